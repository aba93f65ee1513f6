package filter

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
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
// starts nothing; Run does the work.
type Engine struct {
	d      *Decider
	queue  uint16
	queues uint16
	log    *slog.Logger
	ready  chan struct{}

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

// NewEngine returns an engine serving queues queue..queue+queues-1 (queues 0
// means 1) with decider d. log may be nil.
func NewEngine(d *Decider, queue, queues uint16, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{d: d, queue: queue, queues: max(queues, 1), log: log, ready: make(chan struct{})}
}

// Stats returns the current counters; safe to call at any time.
func (e *Engine) Stats() Stats {
	return Stats{Accepted: e.accepted.Load(), Dropped: e.dropped.Load(), Reset: e.reset.Load(), Errors: e.errors.Load()}
}

// Ready is closed once Run listens on every queue. Until then queued
// packets are dropped (fail closed), so a caller should claim the VIP only
// after Ready.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// decide runs the decider on one queued packet and counts the outcome.
func (e *Engine) decide(pkt []byte) Decision {
	dec := e.d.Decide(pkt)
	switch dec.Verdict {
	case Accept:
		e.accepted.Add(1)
	case Reset:
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

// overflowed counts a socket overflow and says whether to log it now (at
// most once a second: under overload the warning itself must not cost).
func (e *Engine) overflowed() bool {
	e.errors.Add(1)
	now := time.Now().UnixNano()
	last := e.lastOverflowLog.Load()
	return now-last >= int64(time.Second) && e.lastOverflowLog.CompareAndSwap(last, now)
}
