// Package kernel is the data path engine that decides new flows in the
// kernel: it installs nftables rules and sets (over netlink, with
// github.com/google/nftables) that hash each new flow's client into a
// bucket with nft's jhash expression, exactly as filter.BucketOf does, and
// accept it when the bucket is in this node's owned set. Apply swaps the
// sets in one atomic netlink transaction; in a steady farm no packet
// visits user space.
//
// # What the rules do
//
// Two tables per family with VIPs (ip, ip6), in prerouting:
//
//   - rules.OwnedTable (created with the owner flag, see below) has two
//     base chains. "raw", at the raw priority -300, before conntrack,
//     counts the new flows to each VIP (Seen) and drops the packets to a
//     VIP's balanced port whose bucket is not in the set "mine": every node
//     receives every frame, so most packets are other nodes', and dropped
//     here they cost no conntrack lookup (nor, with nf_conntrack_tcp_loose=1,
//     an entry per mid-stream packet). "mine" is the owned buckets and the
//     lost ones that may still hold a flow of this node; see holdings for
//     why this never cuts one of this node's flows. "pre", at -160, after
//     conntrack (-200), looks only at packets conntrack sees as new, to a
//     VIP, on a balanced port (the first rule covering the port wins, as in
//     filter.Decider). A bare TCP SYN or a new UDP flow whose bucket is in
//     the set "owned" gets this node's conntrack mark filter.Mark(self);
//     a TCP one also gets the table's conntrack timeout policy, TIME_WAIT
//     5 s instead of 120 s (the policy can only be attached to a flow not
//     yet confirmed, so after conntrack, not in "raw": measured on 6.18).
//     During a reset window, a new TCP packet that is not a bare SYN (a
//     mid-flow packet of a flow nobody here has: with
//     nf_conntrack_tcp_loose=1 conntrack picks it up as new) whose bucket
//     is in the set "takeover" (the plan's Reset buckets this node owns)
//     gets the packet mark resetMark instead: it goes on without a
//     conntrack mark, and the local stack, which has no socket for it,
//     answers with a TCP reset (see package filter).
//   - rules.GuardTable (priority -140, after conntrack; persistent) passes every packet of
//     a flow with this node's conntrack mark and the packets marked
//     resetMark, leaves traffic that is not to a VIP's balanced port alone
//     (ICMP, untracked IPv6 neighbour discovery, other services), and drops
//     everything else to a balanced port: other nodes' flows, new flows of
//     buckets this node does not own, mid-flow packets outside the window,
//     packets conntrack finds invalid.
//
// An accept verdict ends only its own base chain, so the owned table
// cannot let a packet past the guard by accepting it; it marks it, and the
// guard passes what is marked. A packet of an established flow costs its
// bucket's hash and a set lookup in "raw", then one comparison in each of
// "pre" and the guard (its conntrack state, then its conntrack mark). The
// raw drop is an optimisation only: it lives in the owned table, so when
// the agent dies it goes with the table and the guard still fails closed.
//
// # Fail closed by construction
//
// If the agent dies (SIGKILL, crash, OOM kill), the node must stop taking
// new flows before a peer takes over its buckets, which the farm's failure
// detector does within well under a second (memberlist probes every
// 100 ms), while the flows it holds carry on. Two designs were weighed:
//
//  1. Owner flag (chosen). OwnedTable is created with NFT_TABLE_F_OWNER
//     (Linux 5.12+) on a netlink socket the engine keeps open for its
//     whole life and uses for every later change; the kernel ties the
//     table to that socket, refuses changes from any other one, and
//     deletes it when the socket is released, which happens as the dying
//     process's files are closed, before a peer can even have noticed the
//     silence. What remains is GuardTable, which drops every new balanced
//     flow (nothing marks them any more) and still passes this node's
//     flows by their conntrack mark, so established connections survive an
//     agent crash and restart, and a restarted agent replaces the guard in
//     one transaction. It costs nothing at run time and never fails closed
//     by accident. google/nftables v0.3.0 cannot set table flags, so the
//     table alone is created by a hand-built NEWTABLE message sent on the
//     library's own lasting socket (captured with WithSockOptions); the
//     socket is close-on-exec, so recovery scripts the agent runs do not
//     inherit it and keep the table alive.
//  2. A lease: owned-set elements (or one "alive" element) with a timeout
//     the agent keeps renewing, shorter than failure detection. With
//     detection at about 0.3-0.5 s the lease would have to be ~0.2 s and
//     renewed several times a second: on a loaded 2-CPU node one late
//     renewal drops every new flow of the node (a false fail-closed), and
//     after a real death the node keeps accepting until the lease runs out,
//     racing the takeover. It also costs a netlink transaction per renewal.
//
// The owner flag does not cover an agent that is alive but frozen as a
// whole (SIGSTOP, a paused cgroup): its socket stays open, so its table
// keeps accepting while the peers, hearing nothing, take over. Only a
// lease would catch that; it is left out for the reasons above.
//
// The two engines never run at once on a node: Run removes the NFQUEUE
// engine's leftovers (rules.RemoveNFQueue) before it installs, and that
// engine's Install removes GuardTable; rules.Cleanup (`farm cleanup`)
// removes GuardTable too. The VIP claim's table (netdev farm_vip) does not
// interact with these.
package kernel

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter/rules"
)

// errNotRunning is Apply's answer outside Run.
var errNotRunning = errors.New("kernel filter engine: not running (Apply needs Run to have installed the rules)")

// Engine is the kernel data path: New starts nothing; Run installs the
// rules and keeps them until its context ends; Apply changes what this
// node answers.
type Engine struct {
	spec  rules.Spec
	log   *slog.Logger
	ready chan struct{}
	// parked: when Run ends, leave the guard tables (see Park).
	parked atomic.Bool

	// mu serializes Apply with Run's install and removal; nl is the open
	// netlink state while Run serves, nil before and after.
	mu sync.Mutex
	nl *netlinkState

	// applied counts successful Applies, for Stats.
	applied, owned, reset int

	// hold says which buckets are in the set "mine" (guarded by mu);
	// releaseEvery is how often Run dumps this node's flows while some
	// bucket is held, settle how long after a loss a dump may release it.
	hold         holdings
	releaseEvery time.Duration
	settle       time.Duration

	// seenErr says the last read of the new-flow counters failed (guarded
	// by mu), so the failure is logged once.
	seenErr bool
}

// Defaults of releaseEvery and settle.
const (
	defaultReleaseEvery = 5 * time.Second
	defaultSettle       = time.Second
)

// Stats describe the engine's last applied plan. Packets are counted by
// the kernel (nft list ruleset), not here: none of them reaches user space.
type Stats struct {
	// Applies counts the plans applied since the engine started.
	Applies int
	// Owned and Reset are the sizes of the owned and reset sets now.
	Owned, Reset int
	// Held is how many buckets this node no longer owns but still lets
	// through to conntrack, because they may hold flows of this node.
	Held int
}

// New returns an engine for spec (spec.Queue and Queues are not used). It
// serves nobody until the first Apply. log may be nil.
func New(spec rules.Spec, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{spec: spec, log: log, ready: make(chan struct{}),
		releaseEvery: defaultReleaseEvery, settle: defaultSettle}
}

// Ready is closed once Run has installed the rules (serving nobody until
// the first Apply), so a caller should claim the VIP only after Ready.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Park makes Run, when its context ends, leave the guard tables in place
// instead of removing everything: the node goes on carrying its
// established flows (by their conntrack mark) and drops new ones, exactly
// as after a crash, until the next start replaces the tables or `farm
// cleanup` removes them. The agent parks on a graceful stop, so an agent
// stopped for an upgrade, however long, breaks no connection.
func (e *Engine) Park() { e.parked.Store(true) }

// Stats returns what the last Apply installed; safe to call at any time.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Applies: e.applied, Owned: e.owned, Reset: e.reset}
	if e.nl != nil {
		st.Held = e.hold.heldCount()
	}
	return st
}

// Apply makes the kernel follow p from the next packet on: new flows of
// the buckets p.Table gives this node are accepted, and while p.Reset is
// set, orphaned flows of the buckets in p.Reset that this node owns are
// reset; buckets it stops owning are held (see holdings). A planned switch
// (p.Switch) is made by the rules at packet time (switch_linux.go); its
// gains are in the set mine already, so the raw chain lets them through.
// The sets of every family change in one netlink transaction, so no packet
// sees half a plan. It works from any goroutine (the engine's socket
// stays in the namespace Run started in). Call it after Ready; calls are
// serialized.
func (e *Engine) Apply(p plan.Plan) error {
	owned, reset := planSets(p, e.spec.Self)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nl == nil {
		return errNotRunning
	}
	next := e.hold // a copy: kept only if the kernel took the plan
	// A planned switch's gains count as owned for the holdings: the rules
	// answer them from the switch time on, before the planner's next plan
	// owns them, and a flow they start must be held if they are called off.
	next.setOwned(withGains(owned, p.Switch), time.Now())
	if err := e.nl.apply(owned, reset, next.mine(), e.spec.Self, p.Switch); err != nil {
		return err
	}
	e.hold = next
	e.applied++
	e.owned, e.reset = len(owned), len(reset)
	e.log.Debug("Plan applied in the kernel.", "owned", len(owned), "reset", len(reset), "held", e.hold.heldCount())
	return nil
}

// planSets returns, in ascending order, the buckets p has this node answer
// (owned) and those among them whose orphaned flows it resets (reset).
// A nil or all-zero table owns nothing; a nil p.Reset resets nothing. The
// buckets of a planned switch's Lose are not owned: the switch chain
// answers them until the switch time.
func planSets(p plan.Plan, self uint8) (owned, reset []uint16) {
	if p.Table == nil || self == 0 {
		return nil, nil
	}
	for b := range table.Buckets {
		if p.Table[b] != self || (p.Switch != nil && p.Switch.Lose.Has(uint16(b))) {
			continue
		}
		owned = append(owned, uint16(b))
		if p.Reset.Has(uint16(b)) {
			reset = append(reset, uint16(b))
		}
	}
	return owned, reset
}

// withGains adds a planned switch's gains to owned: the raw chain must let
// their packets through from the switch time, when the rules start
// answering them at packet time, though the plan does not own them yet.
func withGains(owned []uint16, sw *plan.Switch) []uint16 {
	if sw == nil || sw.Gain.Len() == 0 {
		return owned
	}
	var in table.Set
	for _, b := range owned {
		in.Add(b)
	}
	out := append([]uint16(nil), owned...)
	for b := range uint16(table.Buckets) {
		if sw.Gain.Has(b) && !in.Has(b) {
			out = append(out, b)
		}
	}
	return out
}
