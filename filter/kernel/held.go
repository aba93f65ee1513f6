package kernel

import (
	"net/netip"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/flows"
)

// holdings decides which buckets the raw chain lets through to conntrack:
// the set "mine" = owned ∪ held. Every node receives every frame, so most
// of a node's traffic is other nodes'; dropping it before conntrack saves
// a conntrack lookup per packet (and, with nf_conntrack_tcp_loose=1, an
// entry created for every mid-stream packet of another node's flow). The
// drop must never cut this node's own flows, and those outlive ownership:
// after a drain, stop, weight change or handoff a node keeps serving its
// established flows (by conntrack mark) in buckets it no longer owns.
//
// # Why no flow of this node is ever dropped before conntrack
//
// A flow of this node is one whose conntrack entry carries
// filter.Mark(self). Only the owned table's chain "pre" sets that mark, and
// only on the first packet of a new flow whose bucket is in "owned"; so
// every flow of this node was created while its bucket was owned. A bucket
// is in "mine" while it is owned (Apply puts it in both sets in the same
// transaction, so there is no moment when it is owned but not mine). When
// it leaves "owned", the same transaction keeps it in "mine" as held. From
// then on this node creates no new flow in it, so the set of its flows in
// that bucket can only shrink. A held bucket is released only by a
// conntrack dump of this node's marked flows that started at least settle
// after the loss (so a first packet accepted by the old rules just before
// the commit has been confirmed and shows in the dump) and lists no flow in
// it; the bucket of each dumped flow is recomputed from its original tuple
// with filter.BucketOf and the affinity of the first rule covering its
// protocol and port, the very function and key the kernel's jhash uses. A
// flow missing from such a dump no longer exists, and none can appear, so
// the bucket holds no flow of this node. A bucket owned again leaves
// "held" (it is owned); lost again, it is held anew with a new loss time,
// so an older dump cannot release it.
//
// Reset-window orphans are in buckets taken over, which are owned: they
// are never dropped here. When the engine starts, every bucket is held
// (flows marked by an earlier run of the agent survive its restart in the
// guard, in any bucket), and the first dump releases those without flows.
//
// A dump runs only while some bucket is held, so a steady farm pays
// nothing. holdings itself is pure; the engine feeds it plans and dumps.
type holdings struct {
	owned table.Set
	held  table.Set
	// lostAt is when each held bucket left owned (or the engine started).
	lostAt [table.Buckets]time.Time
}

// holdAll holds every bucket as lost at now (the engine's start).
func (h *holdings) holdAll(now time.Time) {
	h.owned = table.Set{}
	for b := range table.Buckets {
		h.held.Add(uint16(b))
		h.lostAt[b] = now
	}
}

// setOwned records a plan owning owned (ascending or not) at now: buckets
// that leave owned become held; buckets owned leave held.
func (h *holdings) setOwned(owned []uint16, now time.Time) {
	var next table.Set
	for _, b := range owned {
		next.Add(b)
	}
	for b := range uint16(table.Buckets) {
		switch {
		case next.Has(b):
			h.unhold(b)
		case h.owned.Has(b):
			h.held.Add(b)
			h.lostAt[b] = now
		}
	}
	h.owned = next
}

func (h *holdings) unhold(b uint16) {
	h.held[b/64] &^= 1 << (b % 64)
	h.lostAt[b] = time.Time{}
}

// heldCount is how many buckets are held.
func (h *holdings) heldCount() int { return h.held.Len() }

// mine returns owned ∪ held, ascending.
func (h *holdings) mine() []uint16 {
	var out []uint16
	for b := range uint16(table.Buckets) {
		if h.owned.Has(b) || h.held.Has(b) {
			out = append(out, b)
		}
	}
	return out
}

// release takes out of held, and returns ascending, every held bucket
// lost at least settle before dumpStart in which busy (the buckets of the
// flows listed by a dump that started at dumpStart) has no flow.
func (h *holdings) release(busy *table.Set, dumpStart time.Time, settle time.Duration) []uint16 {
	var out []uint16
	for b := range uint16(table.Buckets) {
		if !h.held.Has(b) || busy.Has(b) || dumpStart.Sub(h.lostAt[b]) < settle {
			continue
		}
		h.unhold(b)
		out = append(out, b)
	}
	return out
}

// flowBuckets returns the buckets of the flows in ts that the rules would
// balance: to one of vips, protocol and destination port covered by a rule
// (the first covering one gives the affinity, as in the kernel and in
// filter.Decider). Other flows carry no bucket of the farm.
func flowBuckets(ts []flows.Tuple, vips []netip.Addr, rs []filter.Rule) *table.Set {
	var busy table.Set
	for _, t := range ts {
		if !isVIP(t.Dst, vips) {
			continue
		}
		for i := range rs {
			if rs[i].Proto == t.Proto && rs[i].Ports.Has(t.DstPort) {
				busy.Add(filter.BucketOf(t.Src, t.SrcPort, rs[i].Affinity))
				break
			}
		}
	}
	return &busy
}

func isVIP(a netip.Addr, vips []netip.Addr) bool {
	a = a.Unmap()
	for _, v := range vips {
		if v.Unmap() == a {
			return true
		}
	}
	return false
}
