package kernel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Helpers shared by the root tests: namespaces with unique names, removed
// in t.Cleanup; commands and sockets inside them; a line echo server.

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a uniquely named network namespace removed in t.Cleanup.
func newNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("farmtest-kern-%s-%d-%08x", role, os.Getpid(), rand.Uint32())
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// inNetns runs f on a fresh thread moved into namespace ns. The thread is
// never unlocked, so it dies with its goroutine and nothing else ever runs
// in the namespace by accident; sockets f creates stay in ns.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// nsRun runs a command in ns and returns its combined output.
func nsRun(ctx context.Context, ns, name string, args ...string) (string, error) {
	var out []byte
	err := inNetns(ns, func() (err error) {
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// pair is a server and a client namespace joined by a veth (eth0 on both
// sides), with loopback up.
type pair struct{ srv, cli string }

func newPair(t *testing.T) pair {
	t.Helper()
	p := pair{srv: newNetns(t, "srv"), cli: newNetns(t, "cli")}
	ipCmd(t, "-n", p.srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.cli)
	for _, ns := range []string{p.srv, p.cli} {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	}
	return p
}

// echoServer answers every line on ln with itself until ln closes.
func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := c.Write([]byte(line)); err != nil {
					return
				}
			}
		}()
	}
}

// listenIn listens on addr inside ns; the listener is closed in t.Cleanup.
func listenIn(t *testing.T, ns, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(ns, func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialFrom connects to addr from inside ns.
func dialFrom(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// echo sends msg on c and checks that it comes back.
func echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// mustTimeOut checks that a connect from ns to addr times out: nothing
// answers (a refusal would mean the local stack saw the SYN).
func mustTimeOut(t *testing.T, ns, addr, what string) {
	t.Helper()
	c, err := dialFrom(ns, addr, 1500*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connect succeeded, want a timeout", what)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: connect failed with %v, want a timeout (a refusal means something answered)", what, err)
	}
}

// tables lists the nft tables in ns ("table ip farm_guard" lines).
func tables(t *testing.T, ns string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := nsRun(ctx, ns, "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
