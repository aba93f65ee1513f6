package testenv

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

// Helpers for root tests in network namespaces. What a test sends stays
// inside namespaces it created with NewNetns or NewPair, so it cannot
// disturb the host or another test running at the same time.

// cmdTimeout bounds every command the helpers run: a hung tool fails the
// test instead of stalling the whole run.
const cmdTimeout = 10 * time.Second

// Run runs a command in the caller's namespace with a bounded timeout,
// fails t on error and returns the combined output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewNetns creates a network namespace named
// farmtest-<role>-<pid>-<random>, and removes it in t.Cleanup, which also
// runs when the test fails. The name is unique, so tests running in
// parallel (or in several test binaries at once) never share a namespace;
// the prefix and role say who made a namespace left behind by a crash.
// Start role with the package's short name ("kern-srv", "rules").
func NewNetns(t testing.TB, role string) string {
	t.Helper()
	name := fmt.Sprintf("farmtest-%s-%d-%08x", role, os.Getpid(), rand.Uint32())
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// InNetns runs f on a fresh goroutine whose OS thread is moved into
// namespace ns, and returns f's error. The thread is locked and never
// unlocked, so it dies with its goroutine: nothing else ever runs in the
// namespace by accident, and the caller's thread stays where it was.
// Sockets f opens stay in ns, and commands f starts run there.
func InNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
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

// EnterNetns moves the calling goroutine's OS thread into namespace ns for
// good: the thread is locked and never unlocked, so it dies with the
// goroutine and no other goroutine ever runs there by accident. Sockets the
// goroutine opens, and commands it runs, live in ns from then on. A
// subtest runs on a goroutine of its own: it must enter again.
func EnterNetns(t testing.TB, ns string) {
	t.Helper()
	runtime.LockOSThread() // never unlocked: see above
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open netns %s: %v", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatalf("enter netns %s: %v", ns, err)
	}
}

// ExecIn runs a command in namespace ns, bounded by ctx and by the
// helpers' command timeout, and returns its combined output; the error
// names the command and carries the output.
func ExecIn(ctx context.Context, ns, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out []byte
	err := InNetns(ns, func() (err error) {
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// RunIn runs a command in namespace ns like ExecIn, failing t on error.
func RunIn(t testing.TB, ns, name string, args ...string) string {
	t.Helper()
	out, err := ExecIn(context.Background(), ns, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Pair is a server and a client namespace joined by a veth named eth0 on
// both sides, with both ends and loopback up and no address yet.
type Pair struct{ Srv, Cli string }

// NewPair creates a Pair named by role (see NewNetns) plus "-srv" and
// "-cli"; both are removed in t.Cleanup.
func NewPair(t testing.TB, role string) Pair {
	t.Helper()
	p := Pair{Srv: NewNetns(t, role+"-srv"), Cli: NewNetns(t, role+"-cli")}
	Run(t, "ip", "-n", p.Srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.Cli)
	for _, ns := range []string{p.Srv, p.Cli} {
		Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	return p
}

// AddAddrs adds each address (with its prefix length, "10.0.0.1/24") to
// dev in ns. IPv6 addresses skip duplicate address detection, so they are
// usable at once.
func AddAddrs(t testing.TB, ns, dev string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		args := []string{"-n", ns, "addr", "add", a, "dev", dev}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		Run(t, "ip", args...)
	}
}

// ListenIn listens on addr inside ns; the listener is closed in t.Cleanup.
func ListenIn(t testing.TB, ns, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := InNetns(ns, func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// DialFrom connects over TCP to addr from inside ns.
func DialFrom(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := InNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// EchoServer answers every line on ln with itself until ln closes.
func EchoServer(ln net.Listener) {
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

// Echo sends msg on c, a connection to an EchoServer, and checks that it
// comes back within 3 s.
func Echo(c net.Conn, msg string) error {
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

// MustTimeOut checks that a connect from ns to addr times out: nothing
// answers (a refusal would mean the local stack saw the SYN).
func MustTimeOut(t testing.TB, ns, addr, what string) {
	t.Helper()
	c, err := DialFrom(ns, addr, 1500*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connect succeeded, want a timeout", what)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: connect failed with %v, want a timeout (a refusal means something answered)", what, err)
	}
}

// Accepted accepts connections on ln until ln closes and hands them over
// on the returned channel, so the test alone uses them. In t.Cleanup it
// closes ln, then every connection nobody took.
func Accepted(t testing.TB, ln net.Listener) <-chan net.Conn {
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// Orphan makes the server namespace srv forget the client's TCP flow c,
// as a node taking over a dead node's flows sees it. It takes the server's
// end of c from accepted (see Accepted) and, after a round trip proving
// the flow works, closes it with a reset that never reaches the client
// and deletes the flow's conntrack entry: no socket, no conntrack entry,
// and the client knows nothing. Needs nft and conntrack; the drop table it
// adds in srv is removed again.
func Orphan(t testing.TB, srv string, c net.Conn, accepted <-chan net.Conn) {
	t.Helper()
	var s net.Conn
	select {
	case s = <-accepted:
	case <-time.After(3 * time.Second):
		c.Close()
		t.Fatal("the server did not accept the connection")
	}
	_ = s.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if _, err := s.Read(make([]byte, 1)); err != nil {
		t.Fatalf("server read: %v", err)
	}
	cli, vip := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	fam := "ip"
	if vip.IP.To4() == nil {
		fam = "ip6"
	}
	// The server's reset on close must not reach the client.
	RunIn(t, srv, "nft", fmt.Sprintf("add table %[1]s farmtest_cut; add chain %[1]s farmtest_cut out { type filter hook output priority 0; policy accept; }; add rule %[1]s farmtest_cut out tcp sport %[2]d drop", fam, vip.Port))
	Abort(s) // synchronous: no other goroutine uses s
	if out := RunIn(t, srv, "conntrack", "-D", "-p", "tcp", "--orig-src", cli.IP.String(), "--orig-dst", vip.IP.String(),
		"--sport", fmt.Sprint(cli.Port), "--dport", fmt.Sprint(vip.Port)); !strings.Contains(out, "1 flow entries") {
		t.Fatalf("conntrack -D deleted something else than the flow:\n%s", out)
	}
	RunIn(t, srv, "nft", "delete table "+fam+" farmtest_cut")
}

// Abort closes c, a TCP connection, with a reset, so nothing lingers.
func Abort(c net.Conn) {
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

// Probe sends data on c, an orphaned flow (see Orphan), and returns the
// read error: a reset, or a timeout after wait. An answer fails t: the
// server side was not forgotten.
func Probe(t testing.TB, c net.Conn, wait time.Duration) error {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("are you there?\n")); err != nil {
		return err
	}
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("the orphaned flow got an answer: the server side was not forgotten")
	}
	return err
}
