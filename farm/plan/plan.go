// Package plan decides what this node's data path does, from the farm view
// and what it did before: which buckets it answers now, which it owns but
// withholds for the handoff delay, which dead node's orphaned flows it resets
// and until when, whether it serves at all, and when the plan next changes by
// itself. It is pure (plain data in and out, no timers, no locks, no OS calls),
// so every policy of a node coming and going is table-tested here; the agent
// only wires Next to membership, a timer and an engine.
package plan

import (
	"math"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// Settings are the fixed inputs of the planner, from the config.
type Settings struct {
	// Self is this node's id.
	Self uint8
	// HandoffDelay is how long this node waits before answering for a bucket
	// it gains from a node that is still alive (join, start, weight change,
	// drain): every node applies a new table when gossip tells it, tens of
	// milliseconds apart, and the node losing the bucket must have let go
	// before the node gaining it answers, or both answer the same SYN.
	// Clients whose SYN falls in the gap retransmit it; no request fails.
	HandoffDelay time.Duration
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

// fenced is the Pending.Until of buckets withheld from a dead node whose
// host may still serve them: no deadline, the next probe result decides.
const fenced = int64(math.MaxInt64)

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

	// Farm is the table the whole farm computes from the view, the one this
	// node is moving to; nil while not serving.
	Farm *table.Table
	// Pending holds the handoffs in progress: the buckets Farm gives this
	// node but Table withholds, until when and from which node; nil when
	// there is none.
	Pending *Pending
	// Had gives, for each bucket the farm gives this node, the node that
	// served it before (0 for none): that node may still hold established
	// flows in it (a drained node keeps them), which become orphans if its
	// host dies later. nil while not serving.
	Had *table.Table
	// Orphaned records the dead nodes whose orphans this node has reset
	// (their host is down), so a later plan does not reset them again.
	Orphaned [256]bool
}

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
	if (p.Table == nil) != (q.Table == nil) || (p.Table != nil && *p.Table != *q.Table) {
		return false
	}
	return (p.Reset == nil) == (q.Reset == nil) && (p.Reset == nil || *p.Reset == *q.Reset)
}

// Next returns the plan for now and the time at which it changes by itself
// (a handoff delay or the reset window ends; zero when nothing is due), given
// the previous plan. It is a function of its arguments only.
//
// The rules:
//   - a node that has no view, has not joined, has no quorum or is leaving
//     serves nobody and resets nothing;
//   - a bucket the farm gives this node is answered at once when nobody
//     served it or when its previous owner left gracefully;
//   - a bucket gained from a node that is still alive is withheld for the
//     handoff delay;
//   - a bucket gained from a dead node (also during a handoff) is taken at
//     once when its host is known not to serve it any more (HostAgentGone,
//     HostGone), and withheld while that is not known (HostUnknown,
//     HostServing);
//   - when a dead node's host is gone (HostGone), the orphaned flows it may
//     hold in this node's buckets are reset for the reset window: in the
//     buckets taken from it at its death and in those it handed over
//     earlier while alive (a drained node keeps its flows); a node whose
//     agent died but whose host lives keeps serving its established flows,
//     and they are not reset;
//   - coming back (start, rejoin, healed partition), this node counts the
//     buckets it gains as the others' (they served them meanwhile), so they
//     are handed over the same way;
//   - a bucket lost is let go at once.
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
	case !v.Quorum:
		why = WhyNoQuorum
	}
	if why != "" {
		return Plan{Why: why, Table: &table.Table{}}, time.Time{}
	}

	before := prev.Farm
	if before == nil {
		before = withoutSelf(v.Nodes, s.Self)
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
	eff := *v.Table
	var had table.Table
	if prev.Had != nil {
		had = *prev.Had
	}
	var pend Pending
	var taken table.Set
	withheld, tookOver := false, false
	var wake int64
	for b, owner := range v.Table {
		if owner != s.Self {
			had[b] = 0
			continue
		}
		from, until := before[b], int64(0)
		switch {
		case prev.Pending != nil && prev.Pending.Until[b] != 0:
			from, until = prev.Pending.From[b], prev.Pending.Until[b]
		case from == s.Self || from == 0:
			// Ours already (had[b] keeps who served it before), or nobody's.
			if from == 0 {
				had[b] = 0
			}
			if h := had[b]; h != 0 && fresh[h] {
				taken.Add(uint16(b))
				tookOver = true
			}
			continue
		}
		had[b] = from
		hold := int64(0)
		switch {
		case live[from]:
			if until == 0 || until == fenced {
				until = nowNS + int64(s.HandoffDelay)
			}
			if until > nowNS {
				hold = until
			}
		case dead[from]:
			switch h := in.Hosts[from]; {
			case h == HostGone:
				if fresh[from] {
					taken.Add(uint16(b))
					tookOver = true
				}
			case h == HostAgentGone:
			case h == HostServing && !kernel[from]:
				// A user-space data path (NFQUEUE, WinDivert) answers
				// nothing while its agent is frozen: take over.
			default:
				hold = fenced
			}
		}
		if hold != 0 {
			eff[b] = 0
			pend.Until[b], pend.From[b] = hold, from
			withheld = true
			if hold != fenced && (wake == 0 || hold < wake) {
				wake = hold
			}
		}
	}

	p := Plan{Serving: true, Table: &eff, Farm: v.Table, Had: &had, Orphaned: orphaned}
	if withheld {
		p.Pending = &pend
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
