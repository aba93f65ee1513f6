package nfqueue_test

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

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/nfqueue"
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

// serve is a plan that answers by table t, with reset set rs (nil: window
// closed).
func serve(t *table.Table, rs *table.Set) plan.Plan {
	p := plan.Plan{Serving: true, Table: t, Reset: rs}
	if rs != nil {
		p.ResetUntil = time.Now().Add(time.Minute)
	}
	return p
}

// apply gives the engine a plan, failing the test if it cannot. Opening or
// closing the reset window runs nft, which must run in ns.
func apply(t *testing.T, ns string, e *nfqueue.Engine, p plan.Plan) {
	t.Helper()
	if err := inNetns(ns, func() error { return e.Apply(p) }); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// rulesPresent reports whether the farm's nft table exists in ns.
func rulesPresent(t *testing.T, ns string) bool {
	t.Helper()
	var out []byte
	_ = inNetns(ns, func() (err error) {
		out, err = exec.Command("nft", "list", "tables").CombinedOutput()
		return err
	})
	return strings.Contains(string(out), "table ip "+rules.NFTTable)
}

// TestEngineNetns runs the real data path between two namespaces joined by
// a veth: the engine installs its rules on the server side and answers the
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

	eng := nfqueue.New(spec, nil)
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
	if !rulesPresent(t, srv) {
		t.Fatal("engine ready without its rules")
	}
	apply(t, srv, eng, serve(fill(1), nil))

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
	apply(t, srv, eng, serve(fill(2), nil))
	dropped := eng.Stats().Dropped
	mustTimeOut("owning no bucket")
	if st := eng.Stats(); st.Dropped <= dropped {
		t.Errorf("no drop counted: %+v", st)
	}
	if err := echo(conn, "still mine"); err != nil {
		t.Errorf("the established flow broke on rebalance: %v", err)
	}

	// 3. A plan that serves nobody: new flows time out.
	apply(t, srv, eng, plan.Plan{Table: &table.Table{}})
	mustTimeOut("not serving")

	// 4. The engine stops: it removes its rules.
	apply(t, srv, eng, serve(fill(1), nil))
	stopEngine()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if rulesPresent(t, srv) {
		t.Error("the engine's rules are still there after Run returned")
	}
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

	eng := nfqueue.New(spec, nil)
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
	mine, others := new(table.Set), new(table.Set)
	for b := range table.Buckets {
		if uint16(b) != bucket {
			others.Add(uint16(b))
		}
	}
	mine.Add(bucket)
	tests := []struct {
		name      string
		owner     uint8
		takeover  *table.Set // nil: window closed
		wantReset bool
	}{
		{"window open, bucket not taken over", 1, others, false},
		{"window open, bucket taken over", 1, mine, true},
		{"window open, taken over but another node owns it", 2, mine, false},
		{"window closed", 1, nil, false},
	}
	for _, tt := range tests {
		window := tt.takeover != nil
		// Steps in the test goroutine: each one leaves the engine as it found it.
		apply(t, srv, eng, serve(fill(1), nil))
		c := orphan()
		apply(t, srv, eng, serve(fill(tt.owner), tt.takeover))
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
		case !window && after != before:
			t.Errorf("%s: the kernel queued packets outside the window: before %+v, after %+v", tt.name, before, after)
		case window && !tt.wantReset && after.Dropped == before.Dropped:
			t.Errorf("%s: the engine dropped nothing (was the packet queued?): before %+v, after %+v", tt.name, before, after)
		default:
			t.Logf("%s: client got %v; stats %+v", tt.name, err, after)
		}
		apply(t, srv, eng, serve(fill(1), nil))
		if tt.wantReset { // the client recovers at once: a new connection works
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
