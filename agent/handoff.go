package agent

import (
	"time"

	"github.com/webfarm/farm/farm/table"
)

// handoff makes bucket moves between live nodes break-before-make. Every node
// applies a new table when gossip tells it, and gossip reaches nodes tens of
// milliseconds apart; if the node gaining a bucket applied it before the node
// losing it, both would answer the same SYN for a moment. So a node takes a
// bucket that a live node owned before only after a delay; meanwhile nobody
// answers SYNs for it and clients retransmit (no request fails). Buckets of
// a dead node are taken at once: nobody else can be answering for them.
type handoff struct {
	delay time.Duration
	// until[b] is when this node may start answering for bucket b (unix ns).
	until [table.Buckets]int64
}

// apply returns the table the data path should use now, given the previous
// intended table and the new one, and when apply should run again (zero if
// nothing is pending). serving tells whether a node may still be answering
// for its old buckets (alive, whatever its state).
func (h *handoff) apply(prev, cur *table.Table, self uint8, serving func(id uint8) bool, now time.Time) (*table.Table, time.Time) {
	eff := *cur
	n := now.UnixNano()
	var next int64
	for b := range cur {
		if cur[b] != self {
			h.until[b] = 0
			continue
		}
		if prev != nil && prev[b] != self && prev[b] != 0 && serving(prev[b]) {
			if u := n + int64(h.delay); u > h.until[b] {
				h.until[b] = u
			}
		}
		if h.until[b] > n {
			eff[b] = 0
			if next == 0 || h.until[b] < next {
				next = h.until[b]
			}
		}
	}
	if next == 0 {
		return &eff, time.Time{}
	}
	return &eff, time.Unix(0, next)
}
