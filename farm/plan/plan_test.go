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

// stale marks a view's majority as not fresh (View.Fresh).
func stale(v view.View) view.View { v.Fresh = false; return v }

// farm returns the view of the given nodes, joined and with quorum as computed.
func farm(nodes ...view.Node) view.View {
	v := view.Compute(append([]view.Node(nil), nodes...), true)
	v.Joined = true
	v.Fresh = v.Quorum
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
	// value means HostGone, the usual case. fenced counts the buckets
	// withheld from a dead node whose host may still answer them.
	host   Host
	fenced int
	// releasing counts the buckets still answered though the farm gave
	// them away; until and from, when not 0, are the Switch's times.
	releasing   int
	until, from time.Duration
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
		if got := next.Releasing.Count(); got != st.releasing {
			t.Errorf("step %d: %d buckets releasing, want %d", i, got, st.releasing)
		}
		if (next.Switch != nil) != (st.pending+st.releasing > 0) {
			t.Errorf("step %d: switch %v with %d pending and %d releasing", i, next.Switch != nil, st.pending, st.releasing)
		}
		if sw := next.Switch; sw != nil {
			if st.until != 0 && sw.Until != t0.Add(st.until).UnixNano() {
				t.Errorf("step %d: switch until +%v, want +%v", i, time.Unix(0, sw.Until).Sub(t0), st.until)
			}
			if st.from != 0 && sw.From != t0.Add(st.from).UnixNano() {
				t.Errorf("step %d: switch from +%v, want +%v", i, time.Unix(0, sw.From).Sub(t0), st.from)
			}
			if sw.Lose.Len() != st.releasing || sw.Gain.Len() != st.pending {
				t.Errorf("step %d: switch loses %d gains %d", i, sw.Lose.Len(), sw.Gain.Len())
			}
		}
		fenced := next.Withheld() - next.Pending.Count()
		if fenced != st.fenced {
			t.Errorf("step %d: %d buckets fenced, want %d", i, fenced, st.fenced)
		}
		if next.Serving && next.Pending.Count()+fenced+next.Owned(s.Self)-next.Releasing.Count() != farmOwned {
			t.Errorf("step %d: answered %d - releasing %d + pending %d != farm share %d", i, next.Owned(s.Self), next.Releasing.Count(), next.Pending.Count(), farmOwned)
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
	// ann is n announcing a switch at t0+at.
	ann := func(n view.Node, at time.Duration) view.Node {
		return with(n, func(n *view.Node) { n.SwitchAt = t0.Add(at).UnixNano() })
	}
	sw := Settings{Self: 1, HandoffDelay: 300 * ms, ResetWindow: 30 * time.Second, SwitchMargin: 5 * ms}
	share3 := shareOf(1, web1, web2, web3)
	web4Joins := farm(web1, web2, web3, ann(web4, 1500*ms))
	lostToWeb4 := moved(three, web4Joins, 1, 4)
	releasing := func(s step, n int, until time.Duration) step { s.releasing, s.until = n, until; return s }
	gaining := func(s step, from time.Duration) step { s.from = from; return s }
	serving := func(at time.Duration, v view.View, pending, reset int, wake time.Duration) step {
		return step{at: at, in: Input{View: v}, serving: true, owned: -1, pending: pending, reset: reset, wake: wake}
	}
	withOwned := func(s step, owned int) step { s.owned = owned; return s }
	hostIs := func(h Host, s step) step { s.host = h; return s }
	// fencing: the step's pending count is really the fenced one.
	fencing := func(s step) step { s.fenced, s.pending = s.pending, 0; return s }

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
			fencing(withOwned(hostIs(probing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3))),
			serving(2*time.Second+10*ms, web2Dead, 0, fromWeb2, 32*time.Second+10*ms),
		}},
		{"dead but its agent still holds its port (frozen): withheld until it answers gossip again", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			fencing(withOwned(hostIs(HostServing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3))),
			fencing(withOwned(hostIs(HostServing, serving(3*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3))),
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
			fencing(withOwned(hostIs(HostServing, serving(2*time.Second, web2Dead, fromWeb2, 0, -1)), shareOf(1, web1, web2, web3))),
			serving(5*time.Second, web2Dead, 0, fromWeb2, 35*time.Second),
		}},
		{"death during a handoff, host not probed yet: fenced, then taken", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			withOwned(serving(2*time.Second, web2Stopped, fromStopped, 0, 2*time.Second+300*ms), shareOf(1, web1, web2, web3)),
			fencing(withOwned(hostIs(probing, serving(2*time.Second+100*ms, farm(web1, dead(web2), web3), fromStopped, 0, -1)), shareOf(1, web1, web2, web3))),
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
		{"quorum regained with a rejoin delay: the others may not know yet", Settings{Self: 1, HandoffDelay: 300 * ms, RejoinDelay: time.Second, ResetWindow: 30 * time.Second}, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			{at: 2 * time.Second, in: Input{View: noQuorum}, why: WhyNoQuorum, wake: -1},
			withOwned(serving(5*time.Second, three, shareOf(1, web1, web2, web3), 0, 6*time.Second), 0),
			serving(6*time.Second, three, 0, 0, -1),
		}},
		{"majority not fresh (minority side of a split): serves nobody, then hands back in", settings, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, farm(web1, web2, web3, web4), 0, 0, -1),
			{at: 2 * time.Second, in: Input{View: stale(farm(web1, dead(web2), web3, web4))}, why: WhyNoQuorum, wake: -1},
			// Fresh again: what it gains, the others served meanwhile.
			withOwned(serving(3*time.Second, farm(web1, dead(web2), web3, web4), shareOf(1, web1, dead(web2), web3, web4), 0, 3*time.Second+300*ms), 0),
			serving(3*time.Second+300*ms, farm(web1, dead(web2), web3, web4), 0, 0, -1),
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
		// Planned moves with an announced switch time (gossip.switch_lead).
		{"announced stop of a peer: taken at the switch time plus the margin", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2*time.Second, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), fromStopped, 0, 2505*ms), share3), 2505*ms),
			// The plain plan once the switch is past (the engines switched
			// at packet time already).
			serving(2505*ms, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), 0, 0, -1),
		}},
		{"own announced drain: answered until the switch time", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			releasing(withOwned(serving(2*time.Second, farm(ann(state(web1, view.StateDraining), 2500*ms), web2, web3), 0, 0, 2500*ms), share3), share3, 2500*ms),
			// Another view change meanwhile keeps the release time.
			releasing(withOwned(serving(2100*ms, farm(ann(state(web1, view.StateDraining), 2500*ms), web2, web3), 0, 0, 2500*ms), share3), share3, 2500*ms),
			withOwned(serving(2500*ms, farm(ann(state(web1, view.StateDraining), 2500*ms), web2, web3), 0, 0, -1), 0),
		}},
		{"own announced start: the gains come at the switch time plus the margin", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, web1Draining, 0, 0, -1),
			gaining(withOwned(serving(2*time.Second, farm(ann(web1, 2500*ms), web2, web3), share3, 0, 2505*ms), 0), 2505*ms),
			serving(2505*ms, farm(ann(web1, 2500*ms), web2, web3), 0, 0, -1),
		}},
		{"own announced weight change: gains at the switch time plus the margin", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2*time.Second, farm(ann(weight(web1, 200), 2500*ms), web2, web3), gainedByWeight, 0, 2505*ms), share3), 2505*ms),
			serving(2505*ms, farm(ann(weight(web1, 200), 2500*ms), web2, web3), 0, 0, -1),
		}},
		{"a peer's announced join: losses answered until the switch time", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(500*ms, three, 0, 0, -1),
			releasing(withOwned(serving(time.Second, web4Joins, 0, 0, 1500*ms), share3), lostToWeb4, 1500*ms),
			// A later announcement does not put the release off.
			releasing(withOwned(serving(1200*ms, farm(web1, web2, web3, ann(web4, 1900*ms)), 0, 0, 1500*ms), share3), lostToWeb4, 1500*ms),
			serving(1500*ms, web4Joins, 0, 0, -1),
		}},
		{"a loser that hears after the switch time lets go at once", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(500*ms, three, 0, 0, -1),
			serving(1600*ms, web4Joins, 0, 0, -1),
		}},
		{"a gainer that hears late waits for the handoff delay", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2600*ms, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), fromStopped, 0, 2900*ms), share3), 2900*ms),
			serving(2900*ms, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), 0, 0, -1),
		}},
		{"a gainer that hears close to the switch time waits for the handoff delay", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2400*ms, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), fromStopped, 0, 2700*ms), share3), 2700*ms),
		}},
		{"an announcement too far ahead is ignored by a loser", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(500*ms, three, 0, 0, -1),
			serving(time.Second, farm(web1, web2, web3, ann(web4, time.Hour)), 0, 0, -1),
		}},
		{"an announcement too far ahead is ignored by a gainer", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2*time.Second, farm(web1, ann(state(web2, view.StateStopped), time.Hour), web3), fromStopped, 0, 2300*ms), share3), 2300*ms),
		}},
		{"death of the loser during a pending switch: taken at once and reset", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(time.Second, three, 0, 0, -1),
			gaining(withOwned(serving(2*time.Second, farm(web1, ann(state(web2, view.StateStopped), 2500*ms), web3), fromStopped, 0, 2505*ms), share3), 2505*ms),
			serving(2100*ms, farm(web1, dead(web2), web3), 0, fromStopped, 32100*ms),
		}},
		{"own application failure: let go at once, whatever switch is pending", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(500*ms, three, 0, 0, -1),
			serving(time.Second, farm(state(web1, view.StateFailed), web2, web3, ann(web4, 1500*ms)), 0, 0, -1),
		}},
		{"death of the gainer during a pending switch: the release is called off, nothing reset", sw, []step{
			serving(0, farm(web1), 0, 0, -1),
			serving(500*ms, three, 0, 0, -1),
			releasing(withOwned(serving(time.Second, web4Joins, 0, 0, 1500*ms), share3), lostToWeb4, 1500*ms),
			serving(1200*ms, farm(web1, web2, web3, dead(web4)), 0, 0, -1),
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
