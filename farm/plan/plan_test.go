package plan

import (
	"testing"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

var (
	t0       = time.Unix(1_000_000, 0)
	settings = Settings{Self: 1, HandoffDelay: 300 * time.Millisecond, ResetWindow: 30 * time.Second}
)

func up(name string, id uint8) view.Node {
	return view.Node{Name: name, ID: id, Weight: 100, State: view.StateUp, Alive: true, Kernel: true}
}

func with(n view.Node, f func(*view.Node)) view.Node { f(&n); return n }

func dead(n view.Node) view.Node {
	return with(n, func(n *view.Node) { n.Alive, n.State = false, view.StateDown })
}
func userSpace(n view.Node) view.Node { return with(n, func(n *view.Node) { n.Kernel = false }) }
func left(n view.Node) view.Node {
	return with(n, func(n *view.Node) { n.Alive, n.Left, n.State = false, true, view.StateDown })
}
func state(n view.Node, st view.State) view.Node {
	return with(n, func(n *view.Node) { n.State = st })
}
func weight(n view.Node, w uint32) view.Node {
	return with(n, func(n *view.Node) { n.Weight = w })
}

// farm returns the view of the given nodes, joined and with quorum as computed.
func farm(nodes ...view.Node) view.View {
	v := view.Compute(append([]view.Node(nil), nodes...), true)
	v.Joined = true
	return v
}

var (
	web1, web2, web3, web4 = up("web1", 1), up("web2", 2), up("web3", 3), up("web4", 4)
)

// probing stands for HostUnknown in step.host (whose zero value is HostGone).
const probing Host = 255

// step is one call of Next in a scenario.
type step struct {
	at      time.Duration // since t0
	in      Input
	serving bool
	why     string
	// owned is how many buckets the node answers now; -1 = as many as the
	// farm table gives it.
	owned int
	// pending and reset are the counts of withheld and reset buckets.
	pending, reset int
	// wake is the expected wake-up, relative to t0; -1 = none.
	wake time.Duration
	// host is what the probe found at every dead node's address; the zero
	// value means HostGone, the usual case.
	host Host
}

func run(t *testing.T, s Settings, steps []step) {
	t.Helper()
	var p Plan
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.in.Hosts == nil {
			h := st.host
			if h == HostUnknown {
				h = HostGone
			}
			if st.host == probing {
				h = HostUnknown
			}
			st.in.Hosts = map[uint8]Host{}
			for _, n := range st.in.View.Nodes {
				if !n.Alive && !n.Left {
					st.in.Hosts[n.ID] = h
				}
			}
		}
		next, wake := Next(p, st.in, s, now)
		farmOwned := 0
		if st.in.View.Table != nil {
			farmOwned = st.in.View.Shares[s.Self]
		}
		want := st.owned
		if want < 0 {
			want = farmOwned
		}
		if next.Serving != st.serving || next.Why != st.why {
			t.Fatalf("step %d: serving %v why %q, want %v %q", i, next.Serving, next.Why, st.serving, st.why)
		}
		if got := next.Owned(s.Self); got != want {
			t.Errorf("step %d: answers %d buckets, want %d (farm gives %d)", i, got, want, farmOwned)
		}
		if got := next.Pending.Count(); got != st.pending {
			t.Errorf("step %d: %d buckets pending, want %d", i, got, st.pending)
		}
		if got := next.Reset.Len(); got != st.reset {
			t.Errorf("step %d: %d buckets in the reset window, want %d", i, got, st.reset)
		}
		switch {
		case st.wake < 0 && !wake.IsZero():
			t.Errorf("step %d: wake at +%v, want none", i, wake.Sub(t0))
		case st.wake >= 0 && !wake.Equal(t0.Add(st.wake)):
			t.Errorf("step %d: wake at %v, want +%v", i, wake.Sub(t0), st.wake)
		}
		if next.Serving && next.Pending.Count()+next.Owned(s.Self) != farmOwned {
			t.Errorf("step %d: answered %d + pending %d != farm share %d", i, next.Owned(s.Self), next.Pending.Count(), farmOwned)
		}
		p = next
	}
}

// shareOf is how many buckets node self has in a farm of the given nodes.
func shareOf(self uint8, nodes ...view.Node) int { return farm(nodes...).Shares[self] }

// moved counts the buckets that go from node `from` in a to self in b.
func moved(a, b view.View, from, self uint8) int {
	n := 0
	for i := range a.Table {
		if a.Table[i] == from && b.Table[i] == self {
			n++
		}
	}
	return n
}

func TestNext(t *testing.T) {
	three := farm(web1, web2, web3)
	web2Dead := farm(web1, dead(web2), web3)
	fromWeb2 := moved(three, web2Dead, 2, 1)
	if fromWeb2 == 0 {
		t.Fatal("test set-up: web1 gains nothing when web2 dies")
	}
	noJoin := three
	noJoin.Joined = false
	noQuorum := farm(web1, dead(web2), dead(web3))
	if noQuorum.Quorum {
		t.Fatal("test set-up: 1 of 3 must have no quorum")
	}
	joining := farm(web1, web2, web3, web4) // web4 joins: web1 only loses
	web2Stopped := farm(web1, state(web2, view.StateStopped), web3)
	web2Draining := farm(web1, state(web2, view.StateDraining), web3)
	web1Draining := farm(state(web1, view.StateDraining), web2, web3)
	web1Heavy := farm(weight(web1, 200), web2, web3)
	web2Left := farm(web1, left(web2), web3)
	fromStopped := moved(three, web2Stopped, 2, 1)
	gainedByWeight := moved(three, web1Heavy, 2, 1) + moved(three, web1Heavy, 3, 1)
	ms := time.Millisecond
	serving := func(at time.Duration, v view.View, pending, reset int, wake time.Duration) step {
		return step{at: at, in: Input{View: v}, serving: true, owned: -1, pending: pending, reset: reset, wake: wake}
	}
	withOwned := func(s step, owned int) step { s.owned = owned; return s }
	hostIs := func(h Host, s step) step { s.host = h; return s }

	tests := []struct {
		name  string
		s     Settings
		steps []step
	}{
		{"no view yet serves nobody", settings, []step{
			{in: Input{}, owned: 0, wake: -1},
		}},
		{"first view of a new farm: everything at once", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
		}},
		{"not joined, then joined", settings, []step{
			{in: Input{View: noJoin}, why: WhyNotJoined, wake: -1},
			// Coming in: the others served this node's buckets meanwhile.
			withOwned(serving(0, three, shareOf(1, web1, web2, web3), 0, 300*ms), 0),
			serving(300*ms, three, 0, 0, -1),
		}},
		{"join of another node: only losses, at once", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, joining, 0, 0, -1),
		}},
		{"death: taken at once and orphans reset", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Dead, 0, fromWeb2, 32*time.Second),
			serving(20*time.Second, web2Dead, 0, fromWeb2, 32*time.Second),
			// The window expires.
			serving(32*time.Second, web2Dead, 0, 0, -1),
		}},
		{"agent died, host alive: taken at once, its flows not reset until its host is gone", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			hostIs(HostAgentGone, serving(2*time.Second, web2Dead, 0, 0, -1)),
			hostIs(HostAgentGone, serving(5*time.Second, web2Dead, 0, 0, -1)),
			// Its host goes too: the window opens from then.
			serving(9*time.Second, web2Dead, 0, fromWeb2, 39*time.Second),
			serving(10*time.Second, web2Dead, 0, fromWeb2, 39*time.Second),
		}},
		{"dead, host not probed yet: withheld without a deadline, then taken", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(hostIs(probing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3)),
			serving(2*time.Second+10*ms, web2Dead, 0, fromWeb2, 32*time.Second+10*ms),
		}},
		{"dead but its agent still holds its port (frozen): withheld until it answers gossip again", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(hostIs(HostServing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3)),
			withOwned(hostIs(HostServing, serving(3*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3)),
			// It thaws: nothing moved, nothing to hand back.
			serving(4*time.Second, three, 0, 0, -1),
		}},
		{"dead, user-space engine, its agent's port still held: taken (it answers nothing while frozen)", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, farm(web1, userSpace(web2), web3), 0, 0, -1),
			hostIs(HostServing, serving(2*time.Second, farm(web1, dead(userSpace(web2)), web3), 0, 0, -1)),
		}},
		{"frozen, then its host is gone: taken and reset", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(hostIs(HostServing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3)),
			serving(5*time.Second, web2Dead, 0, fromWeb2, 35*time.Second),
		}},
		{"death during a handoff, host not probed yet: fenced, then taken", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Stopped, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			withOwned(hostIs(probing, serving(2*time.Second+100*ms, farm(web1, dead(web2), web3), fromStopped, 0, -1)), shareOf(1, web1, web2, web3)),
			hostIs(HostAgentGone, serving(2*time.Second+150*ms, farm(web1, dead(web2), web3), 0, 0, -1)),
		}},
		{"drained, then dead: the flows it kept are reset", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Draining, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(3*time.Second, web2Draining, 0, 0, -1),
			// web2 still serves its established flows in buckets web1 now
			// owns; its host dies.
			serving(60*time.Second, farm(web1, dead(state(web2, view.StateDraining)), web3), 0, fromStopped, 90*time.Second),
		}},
		{"dead, back, dead again: reset each time", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Dead, 0, fromWeb2, 32*time.Second),
			serving(40*time.Second, web2Dead, 0, 0, -1),
			// Back: web1 lets its buckets go at once.
			serving(50*time.Second, three, 0, 0, -1),
			serving(60*time.Second, web2Dead, 0, fromWeb2, 90*time.Second),
		}},
		{"the dead node comes back during the window: its buckets leave the window for good", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Dead, 0, fromWeb2, 32*time.Second),
			// web2 is back: web1 hands its buckets back at once.
			serving(5*time.Second, three, 0, 0, -1),
			// web1 gains buckets again by weight (from live nodes): they
			// hold web2's and web3's live flows and are not reset.
			withOwned(serving(6*time.Second, web1Heavy, gainedByWeight, 0, 6*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(6*time.Second+300*ms, web1Heavy, 0, 0, -1),
		}},
		{"graceful leave: taken at once, nothing reset", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Left, 0, 0, -1),
		}},
		{"stop of a peer: withheld for the handoff delay", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Stopped, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			// Another view change meanwhile keeps the deadline.
			withOwned(serving(2*time.Second+100*ms, web2Stopped, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(2*time.Second+300*ms, web2Stopped, 0, 0, -1),
		}},
		{"drain of a peer: handed over like a stop", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Draining, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(3*time.Second, web2Draining, 0, 0, -1),
		}},
		{"death during a handoff: taken at once and reset", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Stopped, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(2*time.Second+100*ms, farm(web1, dead(web2), web3), 0, fromStopped, 32*time.Second+100*ms),
		}},
		{"own drain or stop: everything let go at once", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web1Draining, 0, 0, -1),
			withOwned(serving(3*time.Second, farm(state(web1, view.StateStopped), web2, web3), 0, 0, -1), 0),
		}},
		{"start again: buckets come back after the handoff delay", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, web1Draining, 0, 0, -1),
			withOwned(serving(2*time.Second, three, shareOf(1, web1, web2, web3), 0, 2*time.Second+300*ms), 0),
			serving(2*time.Second+300*ms, three, 0, 0, -1),
		}},
		{"weight change: gains withheld, losses at once", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web1Heavy, gainedByWeight, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			serving(2*time.Second+300*ms, web1Heavy, 0, 0, -1),
		}},
		{"quorum lost and regained (rejoin after a partition)", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			{at: 2 * time.Second, in: Input{View: noQuorum}, why: WhyNoQuorum, wake: -1},
			// Healed: the majority served all buckets meanwhile, so ours come
			// back after the handoff delay and nothing is reset.
			withOwned(serving(5*time.Second, three, shareOf(1, web1, web2, web3), 0, 5*time.Second+300*ms), 0),
			serving(5*time.Second+300*ms, three, 0, 0, -1),
		}},
		{"leaving: nothing answered, reset window closed", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Dead, 0, fromWeb2, 32*time.Second),
			{at: 3 * time.Second, in: Input{View: web2Dead, Leaving: true}, why: WhyLeaving, wake: -1},
		}},
		{"no reset window configured", Settings{Self: 1, HandoffDelay: 300 * ms}, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Dead, 0, 0, -1),
		}},
		{"no handoff delay configured", Settings{Self: 1}, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			serving(2*time.Second, web2Stopped, 0, 0, -1),
		}},
		{"a second death extends the window and adds its buckets", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, farm(web1, web2, web3, web4), 0, 0, -1),
			serving(2*time.Second, farm(web1, dead(web2), web3, web4),
				0, moved(farm(web1, web2, web3, web4), farm(web1, dead(web2), web3, web4), 2, 1), 32*time.Second),
			serving(10*time.Second, farm(web1, dead(web2), dead(web3), web4), 0,
				moved(farm(web1, web2, web3, web4), farm(web1, dead(web2), web3, web4), 2, 1)+
					moved(farm(web1, dead(web2), web3, web4), farm(web1, dead(web2), dead(web3), web4), 3, 1), 40*time.Second),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, tt.s, tt.steps) })
	}
}

// The buckets reset are exactly those that came from the dead node.
func TestResetIsTheDeadNodesBuckets(t *testing.T) {
	three := farm(web1, web2, web3)
	p, _ := Next(Plan{}, Input{View: farm(web1)}, settings, t0)
	p, _ = Next(p, Input{View: three}, settings, t0.Add(time.Second))
	after := farm(web1, dead(web2), web3)
	p, _ = Next(p, Input{View: after, Hosts: map[uint8]Host{2: HostGone}}, settings, t0.Add(2*time.Second))
	for b := range table.Buckets {
		want := three.Table[b] == 2 && after.Table[b] == 1
		if p.Reset.Has(uint16(b)) != want {
			t.Fatalf("bucket %d: in reset set %v, want %v", b, p.Reset.Has(uint16(b)), want)
		}
	}
}

func TestSame(t *testing.T) {
	a, _ := Next(Plan{}, Input{View: farm(web1)}, settings, t0)
	b, _ := Next(a, Input{View: farm(web1)}, settings, t0.Add(time.Second))
	if !a.Same(b) {
		t.Error("identical plans differ")
	}
	c, _ := Next(b, Input{View: farm(web1, web2)}, settings, t0.Add(2*time.Second))
	if a.Same(c) {
		t.Error("a plan that lost buckets is the same")
	}
	if (Plan{}).Same(Plan{Table: &table.Table{}}) {
		t.Error("nil and empty tables are the same")
	}
}
