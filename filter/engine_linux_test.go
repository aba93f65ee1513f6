package filter_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

// needRoot skips without root (or fails when CI=true).
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	miss := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing in CI: %s", why)
		}
		t.Skipf("skipped: %s", why)
	}
	if os.Geteuid() != 0 {
		miss("needs root (network namespaces, NFQUEUE)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			miss("needs " + tool + " in PATH")
		}
	}
}

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
	name := fmt.Sprintf("farmtest-%s-%d-%08x", role, os.Getpid(), rand.Uint32())
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

func fill(owner uint8) *table.Table {
	t := new(table.Table)
	for i := range t {
		t[i] = owner
	}
	return t
}

// TestEngineNetns runs the real data path between two namespaces joined by
// a veth: rules installed on the server side, the engine answering the
// queue. Owning every bucket, a client connects; owning none, a new connect
// times out while the established connection keeps working (its conntrack
// mark is ours); with the engine stopped, connects time out (fail closed).
func TestEngineNetns(t *testing.T) {
	needRoot(t, "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
	srv, cli := newNetns(t, "srv"), newNetns(t, "cli")
	ipCmd(t, "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
	ipCmd(t, "-n", srv, "addr", "add", "10.88.0.2/24", "dev", "eth0")
	ipCmd(t, "-n", srv, "addr", "add", "10.88.0.100/32", "dev", "eth0")
	ipCmd(t, "-n", cli, "addr", "add", "10.88.0.1/24", "dev", "eth0")
	for _, ns := range []string{srv, cli} {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	}
	const vip, port = "10.88.0.100", 8080
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Rules on the server side: queue 7 and 8 share the new flows.
	web, err := filter.ParsePorts(fmt.Sprint(port))
	if err != nil {
		t.Fatal(err)
	}
	ruleList := []filter.Rule{{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIP}}
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr(vip)}, Rules: ruleList, Queue: 7, Queues: 2}
	if err := inNetns(srv, func() error { return rules.Install(ctx, spec) }); err != nil {
		t.Fatalf("install rules: %v", err)
	}

	// An echo server on the VIP.
	var ln net.Listener
	if err := inNetns(srv, func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", vip, port)); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
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
	}()

	d := filter.NewDecider(1, ruleList)
	d.SetTable(fill(1))
	eng := filter.NewEngine(d, 7, 2, nil)
	engCtx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	runErr := make(chan error, 1)
	go func() { runErr <- inNetns(srv, func() error { return eng.Run(engCtx) }) }()
	select {
	case <-eng.Ready():
	case err := <-runErr:
		t.Fatalf("engine Run: %v", err)
	case <-ctx.Done():
		t.Fatal("engine not ready in time")
	}

	dial := func(timeout time.Duration) (net.Conn, error) {
		var c net.Conn
		err := inNetns(cli, func() (err error) {
			c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", vip, port), timeout)
			return err
		})
		return c, err
	}
	echo := func(c net.Conn, msg string) error {
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
	mustTimeOut := func(what string) {
		t.Helper()
		c, err := dial(1500 * time.Millisecond)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connect succeeded, want a timeout", what)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s: connect failed with %v, want a timeout (a refusal means something answered)", what, err)
		}
	}

	// 1. This node owns every bucket: the connect succeeds.
	conn, err := dial(3 * time.Second)
	if err != nil {
		t.Fatalf("connect while owning every bucket: %v (stats %+v)", err, eng.Stats())
	}
	defer conn.Close()
	if err := echo(conn, "first"); err != nil {
		t.Fatalf("echo on the accepted flow: %v", err)
	}
	if st := eng.Stats(); st.Accepted == 0 {
		t.Errorf("stats after an accepted flow: %+v", st)
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		var out []byte
		_ = inNetns(srv, func() (err error) {
			out, err = exec.CommandContext(ctx, "conntrack", "-L", "-p", "tcp", "--dport", fmt.Sprint(port)).CombinedOutput()
			return err
		})
		if want := fmt.Sprintf("mark=%d", filter.Mark(1)); !strings.Contains(string(out), want) {
			t.Errorf("conntrack entry lacks %s (the copy chain did not run):\n%s", want, out)
		}
	}

	// 2. Another node owns every bucket: new flows time out, ours survives.
	d.SetTable(fill(2))
	dropped := eng.Stats().Dropped
	mustTimeOut("owning no bucket")
	if st := eng.Stats(); st.Dropped <= dropped {
		t.Errorf("no drop counted: %+v", st)
	}
	if err := echo(conn, "still mine"); err != nil {
		t.Errorf("the established flow broke on rebalance: %v", err)
	}

	// 3. The engine stops: queued SYNs find nobody and are dropped.
	d.SetTable(fill(1))
	stopEngine()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	mustTimeOut("engine stopped")
	if st := eng.Stats(); st.Errors != 0 {
		t.Errorf("engine errors: %+v", st)
	}
}
