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
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/internal/testenv"
)

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
	testenv.RequireRoot(t, "network namespaces, NFQUEUE", "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
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

// TestEngineResetNetns checks the takeover reset on the real data path: a
// client's established flow is orphaned on the server side (the server's
// socket vanishes without a word reaching the client, and the flow's
// conntrack entry is deleted: exactly what the new owner of a dead node's
// bucket sees). The client's next segment is answered with a reset only
// while the reset window is open AND the decider has the client's bucket in
// its takeover set AND owns it; otherwise it is dropped, and with the
// window closed the kernel does not even queue it. After the reset the
// client reconnects at once.
func TestEngineResetNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, NFQUEUE", "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore", "conntrack")
	srv, cli := newNetns(t, "srv"), newNetns(t, "cli")
	ipCmd(t, "-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
	ipCmd(t, "-n", srv, "addr", "add", "10.89.0.2/24", "dev", "eth0")
	ipCmd(t, "-n", srv, "addr", "add", "10.89.0.100/32", "dev", "eth0")
	ipCmd(t, "-n", cli, "addr", "add", "10.89.0.1/24", "dev", "eth0")
	for _, ns := range []string{srv, cli} {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	}
	const vip, client, port = "10.89.0.100", "10.89.0.1", 8080
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	web, err := filter.ParsePorts(fmt.Sprint(port))
	if err != nil {
		t.Fatal(err)
	}
	ruleList := []filter.Rule{{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIP}}
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr(vip)}, Rules: ruleList, Queue: 9}
	if err := inNetns(srv, func() error { return rules.Install(ctx, spec) }); err != nil {
		t.Fatalf("install rules: %v", err)
	}
	setReset := func(on bool) {
		t.Helper()
		if err := inNetns(srv, func() error { return rules.SetReset(ctx, spec, on) }); err != nil {
			t.Fatalf("SetReset(%v): %v", on, err)
		}
	}
	srvRun := func(name string, args ...string) string {
		t.Helper()
		var out []byte
		err := inNetns(srv, func() (err error) {
			out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The service keeps listening (the new owner runs it too); accepted
	// connections are handed to the test, which alone uses them.
	var ln net.Listener
	if err := inNetns(srv, func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", vip, port)); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
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

	d := filter.NewDecider(1, ruleList)
	eng := filter.NewEngine(d, 9, 1, nil)
	engCtx, stopEngine := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- inNetns(srv, func() error { return eng.Run(engCtx) }) }()
	t.Cleanup(func() {
		stopEngine()
		if err := <-runErr; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	select {
	case <-eng.Ready():
	case err := <-runErr:
		t.Fatalf("engine Run: %v", err)
	case <-ctx.Done():
		t.Fatal("engine not ready in time")
	}

	dial := func() *net.TCPConn {
		t.Helper()
		var c net.Conn
		err := inNetns(cli, func() (err error) {
			c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", vip, port), 3*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("connect to the VIP: %v (stats %+v)", err, eng.Stats())
		}
		return c.(*net.TCPConn)
	}
	abort := func(c net.Conn) { // close with a reset, so nothing lingers
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	// orphan returns a client connection that the server side has
	// forgotten: no socket, no conntrack entry, and the client knows nothing.
	orphan := func() *net.TCPConn {
		t.Helper()
		c := dial()
		var s net.Conn
		select {
		case s = <-accepted:
		case <-time.After(3 * time.Second):
			c.Close()
			t.Fatal("the server did not accept the connection")
		}
		// A round trip proves the flow works before it is orphaned.
		_ = s.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatalf("client write: %v", err)
		}
		if _, err := s.Read(make([]byte, 1)); err != nil {
			t.Fatalf("server read: %v", err)
		}
		// The server's reset on close must not reach the client.
		srvRun("nft", fmt.Sprintf("add table ip farmtest_cut; add chain ip farmtest_cut out { type filter hook output priority 0; policy accept; }; add rule ip farmtest_cut out tcp sport %d drop", port))
		abort(s) // synchronous: no other goroutine uses s
		cport := fmt.Sprint(c.LocalAddr().(*net.TCPAddr).Port)
		if out := srvRun("conntrack", "-D", "-p", "tcp", "--orig-src", client, "--orig-dst", vip, "--sport", cport, "--dport", fmt.Sprint(port)); !strings.Contains(out, "1 flow entries") {
			t.Fatalf("conntrack -D deleted something else than the flow:\n%s", out)
		}
		srvRun("nft", "delete table ip farmtest_cut")
		return c
	}
	// probe sends data on c and returns the read error: a reset, or a
	// timeout after wait.
	probe := func(c net.Conn, wait time.Duration) error {
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

	bucket := filter.BucketOf(netip.MustParseAddr(client), 0, filter.AffinityIP)
	mine, others := new(filter.Takeover), new(filter.Takeover)
	for b := range table.Buckets {
		if uint16(b) != bucket {
			others.Set(uint16(b))
		}
	}
	mine.Set(bucket)
	tests := []struct {
		name      string
		window    bool
		owner     uint8
		takeover  *filter.Takeover
		wantReset bool
	}{
		{"window open, bucket not taken over", true, 1, others, false},
		{"window open, bucket taken over", true, 1, mine, true},
		{"window open, taken over but another node owns it", true, 2, mine, false},
		{"window closed, bucket taken over", false, 1, mine, false},
	}
	for _, tt := range tests {
		// Steps in the test goroutine: each one leaves the engine as it found it.
		d.SetTable(fill(1))
		d.SetTakeover(nil)
		c := orphan()
		d.SetTable(fill(tt.owner))
		d.SetTakeover(tt.takeover)
		setReset(tt.window)
		before := eng.Stats()
		wait := 1500 * time.Millisecond
		if tt.wantReset {
			wait = 5 * time.Second
		}
		err := probe(c, wait)
		after := eng.Stats()
		abort(c)
		var ne net.Error
		switch {
		case tt.wantReset && !errors.Is(err, syscall.ECONNRESET):
			t.Errorf("%s: client got %v, want a reset (stats before %+v, after %+v)", tt.name, err, before, after)
		case !tt.wantReset && !(errors.As(err, &ne) && ne.Timeout()):
			t.Errorf("%s: client got %v, want a timeout (nothing answers)", tt.name, err)
		case tt.wantReset && after.Reset == before.Reset:
			t.Errorf("%s: the engine counted no reset: %+v", tt.name, after)
		case !tt.window && after != before:
			t.Errorf("%s: the kernel queued packets outside the window: before %+v, after %+v", tt.name, before, after)
		case tt.window && !tt.wantReset && after.Dropped == before.Dropped:
			t.Errorf("%s: the engine dropped nothing (was the packet queued?): before %+v, after %+v", tt.name, before, after)
		default:
			t.Logf("%s: client got %v; stats %+v", tt.name, err, after)
		}
		setReset(false)
		if tt.wantReset { // the client recovers at once: a new connection works
			d.SetTable(fill(1))
			again := dial()
			select {
			case s := <-accepted:
				s.Close()
			case <-time.After(3 * time.Second):
				t.Errorf("%s: reconnect not accepted", tt.name)
			}
			again.Close()
		}
	}
	if st := eng.Stats(); st.Errors != 0 {
		t.Errorf("engine errors: %+v", st)
	}
}
