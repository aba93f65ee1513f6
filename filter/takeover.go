package filter

import (
	"math/bits"

	"github.com/webfarm/farm/farm/table"
)

// Takeover is a set of buckets: those this node took over from a node the
// farm declared dead, recently. While a bucket is in the set (and the
// kernel rules' reset window is open, see rules.SetReset), a packet of a
// flow this node has no state for in that bucket is answered with a TCP
// reset instead of being dropped, so the dead node's clients reconnect at
// once instead of waiting for their own timeout. The zero value is empty.
// A Takeover given to Decider.SetTakeover must not be modified afterwards.
type Takeover [table.Buckets / 64]uint64

// Set adds bucket b (ignored if b >= table.Buckets).
func (t *Takeover) Set(b uint16) {
	if int(b) < table.Buckets {
		t[b/64] |= 1 << (b % 64)
	}
}

// Has reports whether bucket b is in the set; a nil set has no bucket, so
// a decider without a takeover needs no special case.
func (t *Takeover) Has(b uint16) bool {
	return t != nil && int(b) < table.Buckets && t[b/64]&(1<<(b%64)) != 0
}

// Len returns how many buckets the set holds, for logs and status.
func (t *Takeover) Len() int {
	if t == nil {
		return 0
	}
	n := 0
	for _, w := range t {
		n += bits.OnesCount64(w)
	}
	return n
}

// TakeoverOf returns the buckets that next gives to self and prev gave to
// one of the dead node ids, or nil if there are none (so that the result
// can go straight to Decider.SetTakeover). Buckets that self already owned,
// or that came from a live node (a planned change: that node keeps serving
// its flows in its kernel), are not in it: resetting those flows would cut
// connections that still work.
//
// Only the transition from prev to next is considered. A bucket that moved
// away from a node still draining its flows, and whose new owner then died,
// lands here too: the draining node's flows in it would be reset. A caller
// that drains should leave out such buckets (it knows which moved recently).
func TakeoverOf(prev, next *table.Table, self uint8, dead ...uint8) *Takeover {
	if prev == nil || next == nil || self == 0 || len(dead) == 0 {
		return nil
	}
	var isDead [256]bool
	for _, id := range dead {
		isDead[id] = true
	}
	var t Takeover
	found := false
	for b := range next {
		if next[b] == self && prev[b] != self && isDead[prev[b]] && prev[b] != 0 {
			t.Set(uint16(b))
			found = true
		}
	}
	if !found {
		return nil
	}
	return &t
}
