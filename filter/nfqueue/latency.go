package nfqueue

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the verdict latency histogram: the
// time from a queued packet reaching the engine to its verdict being sent.
var LatencyBounds = []time.Duration{
	5 * time.Microsecond, 10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	5 * time.Millisecond, 20 * time.Millisecond,
}

// latency is a fixed-bucket histogram updated with atomics only, so the
// per-packet path neither locks nor allocates.
type latency struct {
	counts [11]atomic.Uint64 // len(LatencyBounds)+1: the last is +Inf
	sumNS  atomic.Uint64
}

func (l *latency) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sumNS.Add(uint64(d))
}

// Latency is a snapshot of the histogram: Counts[i] packets took at most
// LatencyBounds[i] (not cumulative; the last entry is beyond the last bound).
type Latency struct {
	Counts []uint64
	Sum    time.Duration
}

// Latency returns the verdict latency histogram since the engine started.
func (e *Engine) Latency() Latency {
	out := Latency{Counts: make([]uint64, len(e.lat.counts)), Sum: time.Duration(e.lat.sumNS.Load())}
	for i := range e.lat.counts {
		out.Counts[i] = e.lat.counts[i].Load()
	}
	return out
}
