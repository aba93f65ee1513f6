// Package plan decides what this node's data path does, from the farm view
// and what it did before: which buckets it answers now, which it owns but
// withholds until a switch time or for the handoff delay, which it still
// answers until a switch time though the farm gave them away, which dead
// node's orphaned flows it resets and until when, whether it serves at all,
// and when the plan next changes by itself. It is pure (plain data in and out, no timers, no locks, no OS calls),
// so every policy of a node coming and going is table-tested here; the agent
// only wires Next to membership, a timer and an engine.
package plan

import (
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// Settings are the fixed inputs of the planner, from the config.
type Settings struct {
	// Self is this node's id.
	Self uint8
	// HandoffDelay is how long, at least, this node waits after it heard
	// of a change before answering for a bucket it gains from a node that
	// is still alive (join, start, weight change, drain): every node hears
	// of a change when gossip tells it, tens of milliseconds apart, and the
	// node losing the bucket must have let go before the node gaining it
	// answers, or both answer the same SYN. With an announced switch time
	// the gainer starts at the later of that and the switch time plus
	// SwitchMargin, so the delay only shows when it heard too late for the
	// switch time. Clients whose SYN falls in a gap retransmit it; no
	// request fails.
	HandoffDelay time.Duration
	// SwitchMargin is how long after an announced switch time the gaining
	// node starts answering a moved bucket, while the losing node stops at
	// the switch time itself: it covers the clocks' skew (and the time a
	// frame takes to be decided on one node and not yet on the other), so
	// it must be at least the skew between any two nodes' clocks, or both
	// answer the SYNs of that interval. Clients whose SYN falls in the
	// margin (plus the skew the other way) retransmit it.
	SwitchMargin time.Duration
	// RejoinDelay is how long, at least, a node whose quorum comes back
	// (a partition or a cut link healed) withholds the buckets it gains
	// from live nodes, unless it announced a switch time itself. Those
	// nodes declared it dead and learn that it is alive again by gossip,
	// which after a heal takes up to hundreds of milliseconds longer on
	// their side than on its own (measured by the chaos soak: 0.48 s);
	// meanwhile they still answer its buckets, and it must not. Its clients are served by them meanwhile. A planned start or
	// join announces its switch time and is not delayed.
	RejoinDelay time.Duration
	// ResetWindow is how long this node answers the orphaned flows of a dead
	// node, in the buckets it took over, with a TCP reset so their clients
	// reconnect at once. 0 disables it.
	ResetWindow time.Duration
}

// Input is what the plan is made from, besides the previous plan.
type Input struct {
	// View is the latest farm view; a view without a table (none received
	// yet) keeps the previous plan.
	View view.View
	// Leaving is set at shutdown: the node answers no new flow from then
	// on, before the others hear that it left.
	Leaving bool
	// Hosts says, for each dead node, what the agent found at its address
	// (see Host); a dead node missing from it is HostUnknown.
	Hosts map[uint8]Host
}

// Host is what a probe of a dead node's address found. Gossip declares a
// node dead when its agent stops answering probes, which happens when the
// host is gone, but also when only the agent died, or is frozen, or starved
// of CPU: the data path differs in each case, and so does what the others
// may do with its buckets.
type Host uint8

const (
	// HostUnknown: not probed yet. Its buckets are withheld meanwhile (the
	// probe takes at most a few hundred milliseconds).
	HostUnknown Host = iota
	// HostServing: its agent's process still holds its gossip port (frozen,
	// starved, or its gossip lost one way). With the kernel engine its
	// kernel still answers the new flows of its buckets, so they stay
	// withheld: taking them would answer SYNs twice. A user-space engine
	// answers nothing while its agent is frozen: its buckets are taken.
	HostServing
	// HostAgentGone: its host refuses the connection, so its agent is gone:
	// its kernel stopped taking new flows (fail closed) and still carries
	// its established ones. Its buckets are taken, its flows left alone.
	HostAgentGone
	// HostGone: nothing answers: the host is down or cut off. Its buckets
	// are taken and its orphaned flows reset for the reset window.
	HostGone
)

// Why a node does not serve (Plan.Why).
const (
	WhyNotJoined = "not-joined" // has not reached the farm yet
	WhyNoQuorum  = "no-quorum"  // minority side of a partition
	WhyLeaving   = "leaving"    // shutting down
)

// Plan is what the data path does now. The zero Plan serves nobody: a node
// answers only once it knows the farm.
type Plan struct {
	// Serving is false while the node answers no new flow; Why says why
	// (one of the Why* values; "" while serving and in the zero Plan, before
	// any view arrived).
	Serving bool
	Why     string
	// Table gives, for each bucket, the node this node answers for: Self for
	// the buckets it serves now, another id or 0 for the rest. Buckets the
	// farm gives this node but that are withheld (Pending) are 0. nil serves
	// nobody. Engines read only Table and Reset.
	Table *table.Table
	// Reset holds the buckets taken over from dead nodes whose orphaned flows
	// are answered with a TCP reset, until ResetUntil; nil when the reset
	// window is closed.
	Reset      *table.Set
	ResetUntil time.Time

	// Switch is the upcoming change the engines make by themselves, at
	// packet time, when the clock passes its times (see Switch); nil when
	// none is due. Engines read Table, Reset and Switch.
	Switch *Switch

	// Farm is the table the whole farm computes from the view, the one this
	// node is moving to; nil while not serving.
	Farm *table.Table
	// Pending holds the handoffs in progress: the buckets Farm gives this
	// node but Table withholds, until when and from which node; nil when
	// there is none.
	Pending *Pending
	// Releasing holds the buckets Farm gives another node that Table still
	// answers, until when (Until) and for which new owner (From); nil when
	// there is none.
	Releasing *Pending
	// Fenced gives, for each bucket the farm gives this node that is
	// withheld from a dead node whose host may still answer it (HostUnknown,
	// HostServing), that node's id; nil when there is none. There is no
	// deadline: the next probe result decides.
	Fenced *table.Table
	// Last gives, for each bucket the farm gives this node, the node that
	// served it before (0 for none): that node may still hold established
	// flows in it (a drained node keeps them), which become orphans if its
	// host dies later. nil while not serving.
	Last *table.Table
	// Orphaned records the dead nodes whose orphans this node has reset
	// (their host is gone), so a later plan does not reset them again.
	Orphaned [256]bool
}

// Switch is a planned move of buckets the engines apply at packet time: a
// new flow of a bucket in Lose (all answered by Table) is answered only if
// its first packet comes before Until, one of a bucket in Gain (none of them
// answered by Table) only if it comes at or after From. Times are unix ns,
// on the wall clock (nft's meta time and time.Now share it), From at least
// Until plus the margin. After From the planner applies the plain plan, in
// which Lose is gone from Table and Gain is in it: the engines already act
// so, so when the planner's timer fires late, or the netlink transaction
// takes milliseconds, nothing happens later than planned.
type Switch struct {
	Until int64
	Lose  table.Set
	From  int64
	Gain  table.Set
}

// Answers reports whether a new flow of bucket b whose first packet came at
// now (unix ns) is this node's, given whether the plan's Table gives the
// bucket to this node (owned). A nil Switch answers owned.
func (s *Switch) Answers(b uint16, owned bool, now int64) bool {
	switch {
	case s == nil:
		return owned
	case owned:
		return !s.Lose.Has(b) || now < s.Until
	}
	return s.Gain.Has(b) && now >= s.From
}

// MaxSwitchAhead bounds how far ahead of this node's clock an announced
// switch time may lie (tags from peers are untrusted, and a clock may be
// far off): a losing node honours one at most this far ahead, and a gaining
// node one at most twice as far (a gainer starting later than the loser
// stops is safe, the reverse is not); a later one reads as no announcement.
const MaxSwitchAhead = 5 * time.Second

// Pending is the handoff state of each bucket: Until (unix ns) is when this
// node may start answering for the bucket, From the node that served it
// before. Until 0 means nothing pending.
type Pending struct {
	Until [table.Buckets]int64
	From  [table.Buckets]uint8
}

// Count returns how many buckets are withheld.
func (p *Pending) Count() int {
	if p == nil {
		return 0
	}
	n := 0
	for _, u := range p.Until {
		if u != 0 {
			n++
		}
	}
	return n
}

// Withheld counts the buckets the farm gives this node that it does not
// answer yet (Pending and Fenced).
func (p Plan) Withheld() int {
	n := p.Pending.Count()
	if p.Fenced != nil {
		for _, f := range p.Fenced {
			if f != 0 {
				n++
			}
		}
	}
	return n
}

// Owned counts the buckets this node answers for now.
func (p Plan) Owned(self uint8) int {
	if p.Table == nil {
		return 0
	}
	n := 0
	for _, o := range p.Table {
		if o == self {
			n++
		}
	}
	return n
}

// Same reports whether p and q make an engine do the same thing, so the agent
// applies a plan only when something an engine reads changed.
func (p Plan) Same(q Plan) bool {
	if p.Serving != q.Serving || p.Why != q.Why || !p.ResetUntil.Equal(q.ResetUntil) {
		return false
	}
	if (p.Switch == nil) != (q.Switch == nil) || (p.Switch != nil && *p.Switch != *q.Switch) {
		return false
	}
	if (p.Table == nil) != (q.Table == nil) || (p.Table != nil && *p.Table != *q.Table) {
		return false
	}
	return (p.Reset == nil) == (q.Reset == nil) && (p.Reset == nil || *p.Reset == *q.Reset)
}

// Next returns the plan for now and the time at which it changes by itself
// (a planned switch is past, a handoff delay or the reset window ends; zero
// when nothing is due), given
// the previous plan. It is a function of its arguments only.
//
// The rules:
//   - a node that has no view, has not joined, has no quorum or is leaving
//     serves nobody and resets nothing;
//   - a bucket the farm gives this node is answered at once when nobody
//     served it or when its previous owner left gracefully;
//   - a bucket gained from a node that is still alive is withheld until
//     the later of the latest announced switch time plus the margin and the
//     handoff delay after this node heard of the change;
//   - a bucket gained from a dead node (also during a handoff) is taken at
//     once when its host is known not to answer it any more (HostAgentGone,
//     HostGone, or HostServing with a user-space data path), and withheld
//     (Fenced) otherwise; a node without a fresh majority (View.Fresh)
//     serves nobody at all;
//   - when a dead node's host is gone (HostGone), the orphaned flows it may
//     hold in this node's buckets are reset for the reset window: in the
//     buckets taken from it at its death and in those it handed over
//     earlier while alive (a drained node keeps its flows); a node whose
//     agent died but whose host lives keeps serving its established flows,
//     and they are not reset;
//   - coming back (start, rejoin, healed partition), this node counts the
//     buckets it gains as the others' (they served them meanwhile), so they
//     are handed over the same way;
//   - a bucket lost to a live node is still answered until the latest
//     announced switch time if that is ahead, else let go at once (and at
//     once when this node's application failed); a release time once
//     planned is never put off.
//
// # Planned moves without a gap
//
// Every planned change is a change of one node's own tags (its state or
// weight; a join brings its first tags), and that node announces, in the
// same tags, a switch time SwitchLead ahead (farm/member). Until then every
// node keeps the old table for what the change moves; the loser stops at
// the switch time, the gainer starts a margin later, both decided per packet
// by the engines (Switch), so the gap is the margin plus the clocks' skew
// instead of the handoff delay. A timer-driven switch would not be safe: the
// planner's timer fires late under load and a netlink transaction takes
// milliseconds, so the loser could stop after the gainer started.
//
// The switch time used is the latest one announced by any live node (the
// table moves buckets between nodes the change does not name, too); a stale
// one, from an earlier change, lies in the past and means "at once". Safety
// (no SYN answered twice) rests on the same assumption as the handoff delay
// alone: a node hears of a change within the handoff delay of any other
// node. The loser stops at max(heard, switch time); the gainer starts at
// max(heard + handoff delay, switch time + margin). If the loser heard
// before the switch time it stops before the gainer starts whatever the
// gainer heard; if it heard after, it heard within the handoff delay of the
// gainer, which waits that long. So a late hearer is safe on both sides:
// a late loser lets go at once, a late gainer (or one that heard early but
// whose loser may hear late) waits for the handoff delay, as before. The
// announcer hears of its change first, at the switch time minus the lead:
// when it gains (start, join, weight up) it starts at the switch time plus
// the margin, and a loser that heard within the handoff delay of it heard
// before the switch time (the lead is longer than the handoff delay), so it
// stops in time; when it loses (drain, stop, weight down) it knows the time
// from the start and stops then. No acknowledgement from the losers is
// needed for that: a loser that hears late is covered by the gainer's
// handoff delay exactly as without announcements, and waiting for
// acknowledgements in the tags would make every planned change wait for
// the slowest node's gossip round trip and add a tag change per node per
// change. The gap is zero (the margin) when the gainer hears within the
// lead minus the handoff delay, plus the margin, of the announcement (200
// ms with the defaults; gossip takes tens of ms in a LAN).
//
// One Switch per plan: all the releases planned are moved to the earliest
// of them, all the pending gains to the latest (stopping earlier and
// starting later are both safe), so an engine compares with two times.
func Next(prev Plan, in Input, s Settings, now time.Time) (Plan, time.Time) {
	v := in.View
	var why string
	switch {
	case v.Table == nil:
		return prev, time.Time{}
	case in.Leaving:
		why = WhyLeaving
	case !v.Joined:
		why = WhyNotJoined
	case !v.Quorum, !v.Fresh:
		// Without a fresh majority (the peers heard in the last 0.5 s),
		// this node is likely on the minority side of a split whose other
		// side takes its buckets after detecting it dead and probing it
		// (0.65 s or more measured): it stops first.
		why = WhyNoQuorum
	}
	if why != "" {
		return Plan{Why: why, Table: &table.Table{}}, time.Time{}
	}

	before := prev.Farm
	// rejoin: back from the minority side (quorum regained: a partition or
	// a cut link healed) without a switch time of its own ahead. A fresh
	// start joins with its first tags, which the others learn as they learn
	// of it; after a heal they still hold it for dead.
	rejoin := int64(0)
	if before == nil {
		before = withoutSelf(v.Nodes, s.Self)
	}
	if prev.Why == WhyNoQuorum {
		planned := false
		for _, n := range v.Nodes {
			if n.ID == s.Self && n.SwitchAt > now.UnixNano() {
				planned = true
			}
		}
		if !planned {
			rejoin = now.UnixNano() + int64(s.RejoinDelay)
		}
	}
	var live, dead, kernel [256]bool
	for _, n := range v.Nodes {
		kernel[n.ID] = n.Kernel // serf keeps a dead node's last tags
		switch {
		case n.ID == 0:
		case n.Alive:
			live[n.ID] = true
		case !n.Left:
			// Dead means failed, not gone gracefully: a node that left
			// (agent restart, shutdown) still serves its established flows
			// from its kernel, and resetting them would cut healthy
			// connections.
			dead[n.ID] = true
		}
	}

	// orphaned: dead nodes whose host is gone; fresh: those among them
	// whose orphans are not reset yet.
	var orphaned, fresh [256]bool
	for id := range dead {
		if dead[id] && in.Hosts[uint8(id)] == HostGone {
			orphaned[id] = true
			fresh[id] = !prev.Orphaned[id]
		}
	}

	nowNS := now.UnixNano()
	// The latest switch time announced, as a loser and as a gainer may
	// honour it.
	atLose := announced(v.Nodes, nowNS+int64(MaxSwitchAhead))
	for _, n := range v.Nodes {
		if n.ID == s.Self && n.Alive && n.State == view.StateFailed {
			// This node's application failed: new connections to it would
			// fail, so it lets go at once whatever switch is pending.
			atLose = 0
		}
	}
	atGain := announced(v.Nodes, nowNS+2*int64(MaxSwitchAhead))
	if atGain != 0 {
		atGain += int64(s.SwitchMargin)
	}
	eff := *v.Table
	var last, fencedFrom table.Table
	if prev.Last != nil {
		last = *prev.Last
	}
	var pend, rel Pending
	var taken table.Set
	withheld, releasing, tookOver, fenced := false, false, false, false
	var gainAt, loseAt int64
	// resetIfOrphaned puts bucket b in the reset window when the node that
	// served it before this one is freshly orphaned.
	resetIfOrphaned := func(b int) {
		if h := last[b]; h != 0 && fresh[h] {
			taken.Add(uint16(b))
			tookOver = true
		}
	}
	for b, owner := range v.Table {
		had := prev.Table != nil && prev.Table[b] == s.Self
		if owner != s.Self {
			last[b] = 0
			// A bucket lost: answered until the switch time planned for it
			// when it was first lost, or the one announced now.
			until := int64(0)
			switch {
			case !had || owner == 0:
			case prev.Releasing != nil && prev.Releasing.Until[b] != 0:
				until = prev.Releasing.Until[b]
			default:
				until = atLose
			}
			if until > nowNS {
				eff[b] = s.Self
				rel.Until[b], rel.From[b] = until, owner
				releasing = true
				if loseAt == 0 || until < loseAt {
					loseAt = until
				}
			}
			continue
		}
		from, until := before[b], int64(0)
		switch {
		case had:
			resetIfOrphaned(b) // answered already (a release called off, too)
			continue
		case prev.Fenced != nil && prev.Fenced[b] != 0:
			from = prev.Fenced[b]
		case prev.Pending != nil && prev.Pending.Until[b] > nowNS:
			from, until = prev.Pending.From[b], max(prev.Pending.Until[b], atGain)
		case from == s.Self || from == 0:
			if from == 0 {
				last[b] = 0 // nobody's
			}
			resetIfOrphaned(b) // ours already
			continue
		}
		last[b] = from
		switch {
		case live[from]:
			if until == 0 {
				until = max(nowNS+int64(s.HandoffDelay), atGain, rejoin)
			}
			if until > nowNS {
				eff[b] = 0
				pend.Until[b], pend.From[b] = until, from
				withheld = true
				gainAt = max(gainAt, until)
			}
		case dead[from]:
			switch h := in.Hosts[from]; {
			case h == HostGone:
				resetIfOrphaned(b)
			case h == HostAgentGone:
			case h == HostServing && !kernel[from]:
				// A user-space data path (NFQUEUE, WinDivert) answers
				// nothing while its agent is frozen: take over.
			default:
				eff[b] = 0
				fencedFrom[b] = from
				fenced = true
			}
		}
	}

	p := Plan{Serving: true, Table: &eff, Farm: v.Table, Last: &last, Orphaned: orphaned}
	if fenced {
		p.Fenced = &fencedFrom
	}
	var wake int64
	if withheld || releasing {
		sw := &Switch{Until: loseAt, From: gainAt}
		for b := range table.Buckets {
			if rel.Until[b] != 0 {
				rel.Until[b] = loseAt
				sw.Lose.Add(uint16(b))
			}
			if pend.Until[b] != 0 {
				pend.Until[b] = gainAt
				sw.Gain.Add(uint16(b))
			}
		}
		p.Switch = sw
		if withheld {
			p.Pending = &pend
			wake = gainAt
		}
		if releasing {
			p.Releasing = &rel
			if wake == 0 || loseAt < wake {
				wake = loseAt
			}
		}
	}
	open := prev.Reset != nil && prev.ResetUntil.After(now)
	switch {
	case tookOver && s.ResetWindow > 0:
		if open {
			p.Reset = table.Union(prev.Reset, &taken)
		} else {
			p.Reset = &taken
		}
		p.ResetUntil = now.Add(s.ResetWindow)
	case open:
		p.Reset, p.ResetUntil = prev.Reset, prev.ResetUntil
	}
	if p.Reset != nil {
		// Only buckets this node still serves: one handed back (the dead
		// node returned) or moved on holds another node's live flows, and
		// it must not come back into the window if it returns here later.
		kept := table.Set{}
		for b := range table.Buckets {
			if p.Reset.Has(uint16(b)) && eff[b] == s.Self {
				kept.Add(uint16(b))
			}
		}
		p.Reset = &kept
		if kept.Len() == 0 {
			p.Reset, p.ResetUntil = nil, time.Time{}
		}
	}
	next := time.Time{}
	if wake != 0 {
		next = time.Unix(0, wake)
	}
	if p.Reset != nil && (next.IsZero() || p.ResetUntil.Before(next)) {
		next = p.ResetUntil
	}
	return p, next
}

// announced returns the latest switch time (unix ns) a live node announces,
// ignoring those after limit; 0 when there is none.
func announced(nodes []view.Node, limit int64) int64 {
	at := int64(0)
	for _, n := range nodes {
		if n.Alive && n.ID != 0 && n.SwitchAt > 0 && n.SwitchAt <= limit {
			at = max(at, n.SwitchAt)
		}
	}
	return at
}

// withoutSelf is the table the others computed while this node was out: what
// they served meanwhile, and so the previous owners of what it gains back.
func withoutSelf(nodes []view.Node, self uint8) *table.Table {
	others := make([]view.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.ID != self {
			others = append(others, n)
		}
	}
	return table.Compute(view.Owners(others))
}
