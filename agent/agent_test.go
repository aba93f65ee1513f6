package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
)

// fakeEngine records the plans it is given; it installs nothing.
type fakeEngine struct {
	ready    chan struct{}
	failWith error // Run returns it at once when set

	mu    sync.Mutex
	plans []plan.Plan
	// applied is signalled after every Apply.
	applied chan struct{}
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{ready: make(chan struct{}), applied: make(chan struct{}, 1)}
}

func (e *fakeEngine) Run(ctx context.Context) error {
	if e.failWith != nil {
		return e.failWith
	}
	close(e.ready)
	<-ctx.Done()
	return nil
}

func (e *fakeEngine) Ready() <-chan struct{} { return e.ready }

func (e *fakeEngine) Apply(p plan.Plan) error {
	e.mu.Lock()
	e.plans = append(e.plans, p)
	e.mu.Unlock()
	select {
	case e.applied <- struct{}{}:
	default:
	}
	return nil
}

// last returns the last plan applied (the zero Plan if none).
func (e *fakeEngine) last() plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.plans) == 0 {
		return plan.Plan{}
	}
	return e.plans[len(e.plans)-1]
}

// fakeVIP claims nothing.
type fakeVIP struct{}

func (fakeVIP) Cleanup(context.Context) error { return nil }
func (fakeVIP) Run(ctx context.Context, ready func()) error {
	ready()
	<-ctx.Done()
	return nil
}

// fakeFlows returns a settable flow count.
type fakeFlows struct {
	mu sync.Mutex
	n  int
}

func (f *fakeFlows) set(n int) { f.mu.Lock(); f.n = n; f.mu.Unlock() }
func (f *fakeFlows) count(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, nil
}

// freePort returns a port free for TCP and UDP on loopback (serf uses both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// testConfig writes a key and returns a one-node config on loopback: no join
// list, so the node serves alone at once.
func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	key, err := config.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`
state_dir = %q
[node]
name = "web1"
id = 1
drain_timeout = "2s"
[gossip]
bind = "127.0.0.1:%d"
key_file = %q
[[vip]]
address = "192.0.2.100"
interface = "lo"
[[rule]]
proto = "tcp"
ports = "80"
[console]
listen = "127.0.0.1:%d"
%s`, filepath.Join(dir, "state"), freePort(t), keyFile, freePort(t), extra)
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testNode is an agent running with fakes.
type testNode struct {
	a      *Agent
	engine *fakeEngine
	flows  *fakeFlows
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, cfg *config.Config) *testNode {
	t.Helper()
	n := &testNode{engine: newFakeEngine(), flows: &fakeFlows{}, done: make(chan error, 1)}
	a, err := NewWith(cfg, quietLog(), Deps{Engine: n.engine, VIP: fakeVIP{}, Flows: n.flows.count})
	if err != nil {
		t.Fatalf("NewWith: %v", err)
	}
	n.a = a
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- a.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop ends Run (once) and returns its error.
func (n *testNode) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err, ok := <-n.done:
		if !ok {
			return nil
		}
		close(n.done)
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of its context ending")
		return nil
	}
}

// waitPlan polls until the last plan applied satisfies ok.
func (n *testNode) waitPlan(t *testing.T, what string, ok func(plan.Plan) bool) plan.Plan {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if p := n.engine.last(); ok(p) {
			return p
		}
		select {
		case <-n.engine.applied:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			p := n.engine.last()
			t.Fatalf("waiting for %s: last plan serving=%v why=%q owned=%d", what, p.Serving, p.Why, p.Owned(1))
		}
	}
}

func servingAll(p plan.Plan) bool { return p.Serving && p.Owned(1) == table.Buckets }

// waitState polls until the node advertises state st.
func (n *testNode) waitState(t *testing.T, st string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, ns := range n.a.Status(context.Background(), false).Nodes {
			if ns.Self && ns.State == st {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node never advertised %s: %+v", st, n.a.Status(context.Background(), false).Nodes)
}

func TestRunServesAndLeaves(t *testing.T) {
	n := startNode(t, testConfig(t, ""))
	select {
	case <-n.a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the node never became ready")
	}
	n.waitPlan(t, "serving every bucket", servingAll)
	if err := n.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p := n.engine.last(); p.Serving || p.Why != plan.WhyLeaving {
		t.Fatalf("last plan at shutdown: serving=%v why=%q, want leaving", p.Serving, p.Why)
	}
}

// A component that fails ends Run with its error (so the process exits
// non-zero and a service manager restarts it), after the others stopped.
func TestRunFailsWhenAComponentFails(t *testing.T) {
	cfg := testConfig(t, "")
	// The console's port is taken: the console fails at start.
	l, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := startNode(t, cfg)
	select {
	case err := <-n.done:
		close(n.done)
		if err == nil {
			t.Fatal("Run returned nil with the console unable to listen")
		}
		t.Logf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not end after the console failed")
	}
	if p := n.engine.last(); p.Serving {
		t.Error("the node still serves after the failure")
	}
}

func TestRunFailsWhenTheEngineFails(t *testing.T) {
	eng := newFakeEngine()
	eng.failWith = errors.New("no NFQUEUE here")
	a, err := NewWith(testConfig(t, ""), quietLog(), Deps{Engine: eng, VIP: fakeVIP{}, Flows: (&fakeFlows{}).count})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); err == nil || !errors.Is(err, eng.failWith) {
		t.Fatalf("Run = %v, want the engine's error", err)
	}
}

// openFDs counts this process's open file descriptors (Linux).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files here: %v", err)
	}
	return len(ents)
}

// TestStartStopCycles starts and stops an agent 50 times in one process
// (loopback serf, console, checkers, fake engine) and checks that goroutines
// and open files return to where they started: every goroutine and timer
// belongs to Run.
func TestStartStopCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("50 cycles take about 30 s")
	}
	cycle := func(i int) {
		cfg := testConfig(t, `
[[checker]]
name = "port"
type = "tcp"
target = "127.0.0.1:1"
action = "none"
`)
		n := startNode(t, cfg)
		n.waitPlan(t, fmt.Sprintf("cycle %d serving", i), servingAll)
		if err := n.stop(t); err != nil {
			t.Fatalf("cycle %d: Run: %v", i, err)
		}
	}
	cycle(0) // warm up: package-level state (table orders, http transports) is made once
	settle := func() {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	settle()
	g0, f0 := runtime.NumGoroutine(), openFDs(t)
	const cycles = 50
	for i := 1; i <= cycles; i++ {
		cycle(i)
	}
	var g1, f1 int
	deadline := time.Now().Add(10 * time.Second)
	for {
		settle()
		g1, f1 = runtime.NumGoroutine(), openFDs(t)
		if (g1 <= g0 && f1 <= f0) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("after %d start/stop cycles: goroutines %d -> %d, open files %d -> %d", cycles, g0, g1, f0, f1)
	if g1 > g0 || f1 > f0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("leak: goroutines %d -> %d, open files %d -> %d\n%s", g0, g1, f0, f1, buf[:runtime.Stack(buf, true)])
	}
}
