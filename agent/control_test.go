package agent

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

func hasEvent(a *Agent, what string) bool {
	for _, e := range a.events.List(time.Time{}, 1000) {
		if e.What == what {
			return true
		}
	}
	return false
}

func TestOperatorActions(t *testing.T) {
	n := startNode(t, testConfig(t, ""))
	n.waitPlan(t, "serving", servingAll)

	if err := n.a.onAction("stop"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "stopped")
	n.waitPlan(t, "serving nothing after stop", func(p plan.Plan) bool { return p.Serving && p.Owned(1) == 0 })
	if got, _ := loadIntent(n.a.cfg.StateDir); got != IntentStopped {
		t.Errorf("persisted intent %s, want stopped", got)
	}
	if !hasEvent(n.a, "operator.stop") {
		t.Error("no operator.stop event")
	}

	// Start: the buckets come back after the handoff delay (nobody else is
	// alive here, so at once).
	if err := n.a.onAction("start"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "up")
	n.waitPlan(t, "serving again", servingAll)

	if err := n.a.onAction("reboot"); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestDrainEndsWhenFlowsEnd(t *testing.T) {
	n := startNode(t, testConfig(t, ""))
	n.waitPlan(t, "serving", servingAll)
	n.flows.set(3)
	if err := n.a.onAction("drain"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "draining")
	time.Sleep(2 * drainPoll)
	if st := n.a.local.get(); st.Intent != IntentDraining {
		t.Fatalf("drain ended with flows left: %s", st.Intent)
	}
	n.flows.set(0)
	n.waitState(t, "stopped")
	if !hasEvent(n.a, "drain.done") {
		t.Error("no drain.done event")
	}
}

func TestDrainTimesOut(t *testing.T) {
	n := startNode(t, testConfig(t, "")) // drain_timeout 2s
	n.waitPlan(t, "serving", servingAll)
	n.flows.set(5)
	start := time.Now()
	if err := n.a.onAction("drain"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "stopped")
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("drain stopped after %v with flows left, want the 2s timeout", took)
	}
}

func TestStartCancelsDrain(t *testing.T) {
	n := startNode(t, testConfig(t, ""))
	n.waitPlan(t, "serving", servingAll)
	n.flows.set(5)
	if err := n.a.onAction("drain"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "draining")
	if err := n.a.onAction("start"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "up")
	time.Sleep(2500 * time.Millisecond) // past the drain timeout
	if st := n.a.local.get(); st.Intent != IntentUp {
		t.Fatalf("a cancelled drain still stopped the node: %s", st.Intent)
	}
}

// A stopped node with acting checkers, started again, stays failed until its
// checkers pass, instead of showing up and failing a moment later.
func TestStartWaitsForCheckers(t *testing.T) {
	cfg := testConfig(t, `
[app]
start = "/bin/true"
stop = "/bin/true"
[[checker]]
name = "never"
type = "tcp"
target = "127.0.0.1:1"
interval = "200ms"
`)
	n := startNode(t, cfg)
	if err := n.a.onAction("stop"); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, "stopped")
	if err := n.a.onAction("start"); err != nil {
		t.Fatal(err)
	}
	if st := n.a.local.get(); st.Intent != IntentUp || !st.AppFailed {
		t.Fatalf("after start: %+v, want up and waiting for checkers", st)
	}
	n.waitState(t, "failed")
}

// TestReloadWeight changes the weight at run time; other edits are reported.
func TestReloadWeight(t *testing.T) {
	cfg := testConfig(t, "")
	n := startNode(t, cfg)
	n.waitPlan(t, "serving", servingAll)
	next := *cfg
	w := 50
	next.Node.Weight = &w
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := n.a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := n.a.Status(context.Background(), false); len(st.Nodes) == 1 && st.Nodes[0].Weight == 50 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("weight not advertised: %+v", n.a.Status(context.Background(), false).Nodes)
}

func TestRestartOnly(t *testing.T) {
	a := testConfig(t, "")
	b := *a
	b.Gossip.Join = []string{"127.0.0.1:1"}
	w := 7
	b.Node.Weight = &w
	if got := restartOnly(a, &b); !reflect.DeepEqual(got, []string{"gossip"}) {
		t.Errorf("restartOnly = %v, want [gossip] (weight changes live)", got)
	}
	if got := restartOnly(a, a); len(got) != 0 {
		t.Errorf("restartOnly of the same config = %v", got)
	}
}

func TestStateEvents(t *testing.T) {
	web1 := view.Node{Name: "web1", ID: 1, Weight: 100, State: view.StateUp, Alive: true}
	web2 := view.Node{Name: "web2", ID: 2, Weight: 100, State: view.StateUp, Alive: true}
	web2Down := web2
	web2Down.State, web2Down.Alive = view.StateDown, false
	got := stateEvents(nil, []view.Node{web1}, map[uint8]int{1: 4096})
	if len(got) != 1 || got[0].What != "node.up" || got[0].Node != "web1" {
		t.Fatalf("first view: %+v", got)
	}
	got = stateEvents([]view.Node{web1, web2}, []view.Node{web1, web2Down}, map[uint8]int{1: 4096})
	if len(got) != 1 || got[0].What != "node.down" || got[0].Node != "web2" {
		t.Fatalf("web2 died: %+v", got)
	}
	if got := stateEvents([]view.Node{web1}, []view.Node{web1}, nil); len(got) != 0 {
		t.Fatalf("no change: %+v", got)
	}
}

// TestPlannerWiring drives the planner loop with hand-made views (no serf):
// a peer's death gives its buckets to this node at once, the reset window
// opens once the peer's host is found down and closes by itself, and a
// leave serves nobody.
func TestPlannerWiring(t *testing.T) {
	cfg := testConfig(t, "")
	eng := newFakeEngine()
	a, err := NewWith(cfg, quietLog(), Deps{Engine: eng, VIP: fakeVIP{}, Flows: (&fakeFlows{}).count})
	if err != nil {
		t.Fatal(err)
	}
	a.settings.ResetWindow = 300 * time.Millisecond
	// web2's host refuses (only its agent died) until hostGone, then
	// answers nothing.
	var hostGone atomic.Bool
	a.hostDial = func(ctx context.Context, addr string) error {
		if !hostGone.Load() {
			return syscall.ECONNREFUSED
		}
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.planLoop(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	node := func(name string, id uint8, alive bool) view.Node {
		n := view.Node{Name: name, ID: id, Weight: 100, State: view.StateUp, Alive: alive}
		if !alive {
			n.State = view.StateDown
		}
		return n
	}
	show := func(nodes ...view.Node) view.View {
		v := view.Compute(nodes, true)
		v.Joined, v.Fresh = true, true
		a.onView(v)
		return v
	}
	wait := func(what string, ok func(plan.Plan) bool) plan.Plan {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			if p := eng.last(); ok(p) {
				return p
			}
			select {
			case <-eng.applied:
			case <-time.After(20 * time.Millisecond):
			case <-deadline:
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	show(node("web1", 1, true))
	wait("serving alone", servingAll)
	both := show(node("web1", 1, true), node("web2", 2, true))
	wait("sharing", func(p plan.Plan) bool { return p.Owned(1) == both.Shares[1] })
	web2Dead := node("web2", 2, false)
	web2Dead.Addr = "web2:7946"
	show(node("web1", 1, true), web2Dead)
	p := wait("taking over", func(p plan.Plan) bool { return p.Owned(1) == table.Buckets })
	if p.Reset.Len() != 0 {
		t.Errorf("reset window holds %d buckets while web2's host still answers, want 0", p.Reset.Len())
	}
	hostGone.Store(true)
	p = wait("its host found down", func(p plan.Plan) bool { return p.Reset != nil })
	if p.Reset.Len() != both.Shares[2] {
		t.Errorf("reset window holds %d buckets, want web2's %d", p.Reset.Len(), both.Shares[2])
	}
	wait("reset window closing by itself", func(p plan.Plan) bool { return p.Reset == nil && servingAll(p) })
	a.leave()
	if p := eng.last(); p.Serving || p.Why != plan.WhyLeaving {
		t.Errorf("after leave: serving=%v why=%q", p.Serving, p.Why)
	}
}

// TestAdvertisedStateIsTheLatest races checker results against operator
// actions (run with -race) and checks that what was last published is the
// state the node is in, and that the intent on disk is the current one.
func TestAdvertisedStateIsTheLatest(t *testing.T) {
	cfg := testConfig(t, "")
	a, err := NewWith(cfg, quietLog(), Deps{Engine: newFakeEngine(), VIP: fakeVIP{}, Flows: (&fakeFlows{}).count})
	if err != nil {
		t.Fatal(err)
	}
	var pubMu sync.Mutex
	var published view.State
	var publishedW uint32
	a.local.publish = func(st view.State, w uint32) error {
		// Widen the window between deciding and publishing.
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		pubMu.Lock()
		published, publishedW = st, w
		pubMu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 200 {
				switch r.IntN(4) {
				case 0:
					a.SetFailed(r.IntN(2) == 0, "stress")
				case 1:
					_ = a.onAction([]string{"stop", "start", "drain"}[r.IntN(3)])
				case 2:
					_, _, _ = a.local.update(func(s *localState) { s.Weight = uint32(r.IntN(3)) * 50 })
				default:
					_ = a.Status(context.Background(), false)
				}
			}
		})
	}
	wg.Wait()
	a.cancelDrain()
	a.tasks.stop()
	final := a.local.get()
	pubMu.Lock()
	defer pubMu.Unlock()
	if published != final.State() || publishedW != final.Weight {
		t.Fatalf("advertised %s weight %d, but the node is %s weight %d", published, publishedW, final.State(), final.Weight)
	}
	onDisk, err := loadIntent(cfg.StateDir)
	want := final.Intent
	if want == IntentDraining {
		want = IntentStopped // a drain is finished as a stop after a restart
	}
	if err != nil || onDisk != want {
		t.Fatalf("intent on disk %s (%v), want %s", onDisk, err, want)
	}
}

func TestHostFound(t *testing.T) {
	for _, c := range []struct {
		err  error
		want plan.Host
	}{
		{nil, plan.HostServing},
		{syscall.ECONNREFUSED, plan.HostAgentGone},
		{&net.OpError{Op: "dial", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}, plan.HostAgentGone},
		{context.DeadlineExceeded, plan.HostGone},
		{syscall.EHOSTUNREACH, plan.HostGone},
		{syscall.ENETUNREACH, plan.HostGone},
	} {
		if got := hostFound(c.err); got != c.want {
			t.Errorf("hostFound(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestWitnessFreshness(t *testing.T) {
	now := time.Unix(100, 0)
	for _, c := range []struct {
		ago  time.Duration
		want bool
	}{{0, true}, {witnessFresh, true}, {witnessFresh + time.Millisecond, false}, {2 * time.Second, false}} {
		if got := witnessOK(now.Add(-c.ago).UnixNano(), now); got != c.want {
			t.Errorf("last answer %v ago: ok = %v, want %v", c.ago, got, c.want)
		}
	}
}
