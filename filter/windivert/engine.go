package windivert

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/farm/plan"
)

// Engine is the WinDivert data path for Windows nodes, behind the agent's
// engine interface (Run, Ready, Apply). New starts nothing; Run (Windows
// amd64 only) installs the filter, the crash guard and the VIP addresses,
// serves until its context ends and removes them.
type Engine struct {
	spec  Spec
	log   *slog.Logger
	core  *Core
	ready chan struct{}
	vips  []netip.Addr

	// applyMu serializes Apply.
	applyMu sync.Mutex

	// Published by the packet loop after each batch, for Stats and Flows.
	flows, flowsTCP, flowsUDP atomic.Int64
	evicted, expired          atomic.Uint64
	batches, errors           atomic.Uint64
	// lastErrLog rate-limits per-batch warnings (unix ns).
	lastErrLog atomic.Int64
}

// Stats are the engine's counters since it was created.
type Stats struct {
	// Accepted counts packets reinjected as this node's.
	Accepted uint64
	// Dropped counts diverted packets dropped, for any reason.
	Dropped uint64
	// Reset counts orphaned packets reinjected for the stack to reset.
	Reset uint64
	// Malformed counts dropped packets that were not whole TCP or UDP.
	Malformed uint64
	// Errors counts receive and send failures; it should stay 0.
	Errors uint64
	// Batches counts WinDivertRecvEx calls that returned packets.
	Batches uint64
	// Flows is the flow table's size now; Evicted and Expired count the
	// flows it dropped to make room and by idle timeout.
	Flows            int64
	Evicted, Expired uint64
}

// New returns an engine for spec (check it with Spec.Validate first; Run
// does too). It serves nobody until the first Apply. log may be nil. The
// flow table (Spec.MaxFlows entries of 64 bytes) is allocated here.
func New(spec Spec, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	vips := make([]netip.Addr, len(spec.VIPs))
	for i, v := range spec.VIPs {
		vips[i] = v.Addr.Unmap()
	}
	return &Engine{
		spec: spec, log: log, ready: make(chan struct{}), vips: vips,
		core: NewCore(spec.Self, spec.Rules, vips, NewFlowTable(spec.maxFlows(), spec.Timeouts)),
	}
}

// Apply makes the engine follow p from the next packet on: it answers the
// buckets p.Table gives this node and resets the orphaned flows of the
// buckets in p.Reset. Every packet to a balanced port is diverted anyway
// (there is no kernel rule to switch as on Linux), so opening or closing
// the reset window only swaps the takeover set. It never fails; it may be
// called before Run.
func (e *Engine) Apply(p plan.Plan) error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	d := e.core.Decider()
	d.SetTable(p.Table)
	e.core.SetSwitch(p.Table, p.Switch)
	d.SetTakeover(p.Reset)
	return nil
}

// Ready is closed once Run diverts the VIPs' traffic and holds the VIP
// addresses: from then on every packet is decided.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Stats returns the current counters; safe to call at any time.
func (e *Engine) Stats() Stats {
	c := e.core.Stats()
	return Stats{
		Accepted: c.Accepted, Dropped: c.Dropped, Reset: c.Reset, Malformed: c.Malformed,
		Errors: e.errors.Load(), Batches: e.batches.Load(),
		Flows: e.flows.Load(), Evicted: e.evicted.Load(), Expired: e.expired.Load(),
	}
}

// Seen returns, per VIP in the spec's order, how many new flows the engine
// saw before its verdict since it was created (the frame-delivery
// self-test compares these between nodes).
func (e *Engine) Seen() []uint64 { return e.core.Seen() }

// Flows returns how many flows of this node the engine tracks (TCP flows
// not closing, and UDP flows), as of the last batch: what a drain waits
// for. It is the agent's Deps.Flows on Windows.
func (e *Engine) Flows(context.Context) (int, error) {
	return int(e.flowsTCP.Load() + e.flowsUDP.Load()), nil
}

// logDue reports whether a rate-limited warning may be logged at now (unix
// ns): at most one a second, so an error on every batch does not flood the
// log or cost the loop.
func (e *Engine) logDue(now int64) bool {
	last := e.lastErrLog.Load()
	return now-last >= int64(time.Second) && e.lastErrLog.CompareAndSwap(last, now)
}

// publish copies the flow table's sizes for Stats and Flows; the packet
// loop calls it after each batch.
func (e *Engine) publish() {
	t := e.core.Flows()
	e.flows.Store(int64(t.Len()))
	e.flowsTCP.Store(int64(t.Count(ClassSYN) + t.Count(ClassEstablished)))
	e.flowsUDP.Store(int64(t.Count(ClassUDPNew) + t.Count(ClassUDP)))
	e.evicted.Store(t.Evicted())
	e.expired.Store(t.Expired())
}
