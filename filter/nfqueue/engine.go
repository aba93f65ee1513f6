// Package nfqueue is the data path engine that decides new flows in user
// space: it installs the farm's kernel rules (package rules), which queue the
// first packet of each new balanced flow over NFQUEUE, and answers each with
// the verdict of a filter.Decider that follows the plan (farm/plan) the agent
// applies. Established flows never leave the kernel: their conntrack mark
// decides them. It fails closed: the queues are never bypassed, so a node
// whose engine is gone drops new flows instead of answering every client.
package nfqueue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

// MaxPacketLen is how much of each queued packet the kernel copies to the
// engine: the IP header, IPv6 extension headers and the ports fit; the
// payload is never needed.
const MaxPacketLen = 128

// Engine connects a Decider to the kernel: it receives the first packet of
// each new balanced flow from NFQUEUE (on Linux) and returns accept with
// this node's mark, or drop; during a reset window it also receives the
// packets of flows this node has no state for, and accepts the orphans
// among them without a mark (Reset), so the local stack resets them. New
// starts nothing; Run installs the rules and does the work.
type Engine struct {
	spec   rules.Spec
	d      *filter.Decider
	queue  uint16
	queues uint16
	log    *slog.Logger
	ready  chan struct{}

	// applyMu serializes Apply, which toggles the kernel's reset rules.
	applyMu sync.Mutex
	resetOn bool
	// planned is the table and the planned switch of the last plan, in one
	// pointer so a packet never sees one plan's table with another's
	// switch; nil when no switch is due (the decider's table decides).
	planned atomic.Pointer[planned]

	// seen counts, per VIP (in spec.VIPs order), the new flows queued,
	// whoever owns them: every node should see all of them.
	seen []atomic.Uint64

	lat latency

	accepted atomic.Uint64
	dropped  atomic.Uint64
	reset    atomic.Uint64
	errors   atomic.Uint64
	// lastOverflowLog rate-limits the socket-overflow warning (unix ns).
	lastOverflowLog atomic.Int64
}

// Stats are the engine's counters since it was created.
type Stats struct {
	// Accepted counts flows this node took (packets accepted and marked).
	Accepted uint64
	// Dropped counts queued packets dropped, for any Reason.
	Dropped uint64
	// Reset counts packets of orphaned flows handed to the local stack to
	// be answered with a TCP reset (Verdict Reset).
	Reset uint64
	// Errors counts receive and verdict failures and socket overflows;
	// it should stay at 0.
	Errors uint64
}

// New returns an engine for the rules of spec, serving queues
// spec.Queue..spec.Queue+spec.Queues-1 (Queues 0 means 1). It serves nobody
// until the first Apply. log may be nil.
func New(spec rules.Spec, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		spec: spec, d: filter.NewDecider(spec.Self, spec.Rules),
		queue: spec.Queue, queues: max(spec.Queues, 1), log: log, ready: make(chan struct{}),
		seen: make([]atomic.Uint64, len(spec.VIPs)),
	}
}

// planned is a table with its planned switch (plan.Switch).
type planned struct {
	t  *table.Table
	sw *plan.Switch
}

// applyTimeout bounds the nft call that opens or closes the reset window.
const applyTimeout = 10 * time.Second

// Apply makes the engine follow p from the next packet on: it answers the
// buckets p.Table gives this node and, while p.Reset is set, has the kernel
// queue orphaned mid-flow packets so the decider resets those in p.Reset.
// The window opens with the set in place before the kernel queues anything
// for it, and closes in the kernel before the set goes, so no queued packet
// finds an empty set. Call it after Ready; calls are serialized.
func (e *Engine) Apply(p plan.Plan) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	// The decider's table first: while a switch is set it decides new
	// flows by the switch's own table, so either order is consistent.
	e.d.SetTable(p.Table)
	if p.Switch != nil {
		e.planned.Store(&planned{t: p.Table, sw: p.Switch})
	} else {
		e.planned.Store(nil)
	}
	switch open := p.Reset != nil; {
	case open && !e.resetOn:
		e.d.SetTakeover(p.Reset)
		if err := rules.SetReset(ctx, e.spec, true); err != nil {
			e.d.SetTakeover(nil)
			return fmt.Errorf("open the reset window: %w", err)
		}
		e.resetOn = true
	case !open && e.resetOn:
		if err := rules.SetReset(ctx, e.spec, false); err != nil {
			return fmt.Errorf("close the reset window: %w", err)
		}
		e.resetOn = false
		e.d.SetTakeover(nil)
	default:
		e.d.SetTakeover(p.Reset)
	}
	return nil
}

// Stats returns the current counters; safe to call at any time.
func (e *Engine) Stats() Stats {
	return Stats{Accepted: e.accepted.Load(), Dropped: e.dropped.Load(), Reset: e.reset.Load(), Errors: e.errors.Load()}
}

// Seen returns, per VIP in the spec's order, how many new flows the engine
// saw (before its verdict) since it was created.
func (e *Engine) Seen() []uint64 {
	out := make([]uint64, len(e.seen))
	for i := range e.seen {
		out[i] = e.seen[i].Load()
	}
	return out
}

// Ready is closed once Run listens on every queue. Until then queued
// packets are dropped (fail closed), so a caller should claim the VIP only
// after Ready.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// decide runs the decider on one queued packet that came at now (unix ns,
// wall clock) and counts the outcome. While a planned switch is due, a new
// flow's verdict is the switch's at the packet's time.
func (e *Engine) decide(pkt []byte, now int64) filter.Decision {
	dec := e.d.Decide(pkt)
	if pl := e.planned.Load(); pl != nil && dec.Opens {
		dec = switched(dec, pl, e.d.Self(), now)
	}
	if dec.Opens {
		for i, v := range e.spec.VIPs {
			if v == dec.Dst {
				e.seen[i].Add(1)
				break
			}
		}
	}
	switch dec.Verdict {
	case filter.Accept:
		e.accepted.Add(1)
	case filter.Reset:
		e.reset.Add(1)
	default:
		e.dropped.Add(1)
	}
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		e.log.Debug("Packet decided.", "verdict", dec.Verdict.String(), "reason", dec.Reason.String(),
			"bucket", dec.Bucket, "owner", dec.Owner)
	}
	return dec
}

// switched returns dec as the planned switch pl decides it at now: only
// for a packet that opens a flow and that a rule covers (those are the
// decisions by owner).
func switched(dec filter.Decision, pl *planned, self uint8, now int64) filter.Decision {
	switch dec.Reason {
	case filter.ReasonOwner, filter.ReasonNotOwner, filter.ReasonUnowned:
	default:
		return dec
	}
	owned := pl.t != nil && pl.t[dec.Bucket] == self
	if pl.t != nil {
		dec.Owner = pl.t[dec.Bucket]
	}
	if pl.sw.Answers(dec.Bucket, owned, now) {
		dec.Verdict, dec.Reason, dec.Owner = filter.Accept, filter.ReasonOwner, self
	} else {
		dec.Verdict = filter.Drop
		if dec.Reason == filter.ReasonOwner {
			dec.Reason = filter.ReasonNotOwner
		}
	}
	return dec
}

// overflowed counts a socket overflow and says whether to log it now (at
// most once a second: under overload the warning itself must not cost).
func (e *Engine) overflowed() bool {
	e.errors.Add(1)
	now := time.Now().UnixNano()
	last := e.lastOverflowLog.Load()
	return now-last >= int64(time.Second) && e.lastOverflowLog.CompareAndSwap(last, now)
}
