package nfqueue_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/nfqueue"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/internal/testenv"
)

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
	if err := testenv.InNetns(ns, func() error { return e.Apply(p) }); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// rulesPresent reports whether the farm's nft table exists in ns.
func rulesPresent(t *testing.T, ns string) bool {
	t.Helper()
	return strings.Contains(testenv.RunIn(t, ns, "nft", "list", "tables"), "table ip "+rules.NFTTable)
}

// pair is a testenv.Pair numbered n: the server has 10.n.0.2/24 and the
// VIP 10.n.0.100, the client 10.n.0.1/24.
func pair(t *testing.T, n int) (srv, cli string) {
	t.Helper()
	p := testenv.NewPair(t, "nfq")
	testenv.AddAddrs(t, p.Srv, "eth0", fmt.Sprintf("10.%d.0.2/24", n), fmt.Sprintf("10.%d.0.100/32", n))
	testenv.AddAddrs(t, p.Cli, "eth0", fmt.Sprintf("10.%d.0.1/24", n))
	return p.Srv, p.Cli
}

// tcpSpec is node 1's spec for TCP port on vip, by client address, with
// queues queue..queue+queues-1 (0: one).
func tcpSpec(t *testing.T, vip string, port int, queue, queues uint16) rules.Spec {
	t.Helper()
	web, err := filter.ParsePorts(fmt.Sprint(port))
	if err != nil {
		t.Fatal(err)
	}
	ruleList := []filter.Rule{{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIP}}
	return rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr(vip)}, Rules: ruleList, Queue: queue, Queues: queues}
}

// TestEngineNetns runs the real data path between two namespaces joined by
// a veth: the engine installs its rules on the server side and answers the
// queue. Owning every bucket, a client connects; owning none, a new connect
// times out while the established connection keeps working (its conntrack
// mark is ours); with the engine stopped, connects time out (fail closed).
func TestEngineNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, NFQUEUE", "ip", "nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore")
	srv, cli := pair(t, 88)
	const vip, port = "10.88.0.100", 8080
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Rules on the server side: queue 7 and 8 share the new flows.
	spec := tcpSpec(t, vip, port, 7, 2)

	// An echo server on the VIP.
	addr := fmt.Sprintf("%s:%d", vip, port)
	go testenv.EchoServer(testenv.ListenIn(t, srv, "tcp", addr))

	eng := nfqueue.New(spec, nil)
	engCtx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	runErr := make(chan error, 1)
	go func() { runErr <- testenv.InNetns(srv, func() error { return eng.Run(engCtx) }) }()
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

	// 1. This node owns every bucket: the connect succeeds.
	conn, err := testenv.DialFrom(cli, addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connect while owning every bucket: %v (stats %+v)", err, eng.Stats())
	}
	defer conn.Close()
	if err := testenv.Echo(conn, "first"); err != nil {
		t.Fatalf("echo on the accepted flow: %v", err)
	}
	if st := eng.Stats(); st.Accepted == 0 {
		t.Errorf("stats after an accepted flow: %+v", st)
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		out, _ := testenv.ExecIn(ctx, srv, "conntrack", "-L", "-p", "tcp", "--dport", fmt.Sprint(port))
		if want := fmt.Sprintf("mark=%d", filter.Mark(1)); !strings.Contains(out, want) {
			t.Errorf("conntrack entry lacks %s (the copy chain did not run):\n%s", want, out)
		}
	}

	// 2. Another node owns every bucket: new flows time out, ours survives.
	apply(t, srv, eng, serve(fill(2), nil))
	dropped := eng.Stats().Dropped
	testenv.MustTimeOut(t, cli, addr, "owning no bucket")
	if st := eng.Stats(); st.Dropped <= dropped {
		t.Errorf("no drop counted: %+v", st)
	}
	if err := testenv.Echo(conn, "still mine"); err != nil {
		t.Errorf("the established flow broke on rebalance: %v", err)
	}

	// 3. A plan that serves nobody: new flows time out.
	apply(t, srv, eng, plan.Plan{Table: &table.Table{}})
	testenv.MustTimeOut(t, cli, addr, "not serving")

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
	srv, cli := pair(t, 89)
	const vip, client, port = "10.89.0.100", "10.89.0.1", 8080
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	spec := tcpSpec(t, vip, port, 9, 0)

	// The service keeps listening (the new owner runs it too); accepted
	// connections are handed to the test, which alone uses them.
	ln := testenv.ListenIn(t, srv, "tcp", fmt.Sprintf("%s:%d", vip, port))
	accepted := testenv.Accepted(t, ln)

	eng := nfqueue.New(spec, nil)
	engCtx, stopEngine := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- testenv.InNetns(srv, func() error { return eng.Run(engCtx) }) }()
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
		c, err := testenv.DialFrom(cli, fmt.Sprintf("%s:%d", vip, port), 3*time.Second)
		if err != nil {
			t.Fatalf("connect to the VIP: %v (stats %+v)", err, eng.Stats())
		}
		return c.(*net.TCPConn)
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
		c := dial()
		testenv.Orphan(t, srv, c, accepted)
		apply(t, srv, eng, serve(fill(tt.owner), tt.takeover))
		before := eng.Stats()
		wait := 1500 * time.Millisecond
		if tt.wantReset {
			wait = 5 * time.Second
		}
		err := testenv.Probe(t, c, wait)
		after := eng.Stats()
		testenv.Abort(c)
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
