package kernel

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/flows"
)

func TestHoldings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const settle = time.Second
	var h holdings
	h.holdAll(t0)
	if h.heldCount() != table.Buckets || len(h.mine()) != table.Buckets {
		t.Fatalf("at start: held %d, mine %d; want every bucket", h.heldCount(), len(h.mine()))
	}

	// A first plan owns 1, 2 and 3; the rest stays held until a dump.
	h.setOwned([]uint16{1, 2, 3}, t0.Add(time.Second))
	if h.heldCount() != table.Buckets-3 || len(h.mine()) != table.Buckets {
		t.Fatalf("after the first plan: held %d, mine %d", h.heldCount(), len(h.mine()))
	}
	// A dump too soon after the start releases nothing.
	if got := h.release(&table.Set{}, t0.Add(500*time.Millisecond), settle); len(got) != 0 {
		t.Fatalf("a dump within settle of the loss released %d buckets", len(got))
	}
	// A later dump that lists a flow in bucket 7 releases everything else.
	var busy table.Set
	busy.Add(7)
	got := h.release(&busy, t0.Add(2*time.Second), settle)
	if len(got) != table.Buckets-4 || slices.Contains(got, 7) || slices.Contains(got, 1) {
		t.Fatalf("release: %d buckets, 7 or 1 among them", len(got))
	}
	if want := []uint16{1, 2, 3, 7}; !slices.Equal(h.mine(), want) {
		t.Fatalf("mine = %v, want %v", h.mine(), want)
	}

	// Bucket 2 is lost at t0+10s: held, still mine.
	t1 := t0.Add(10 * time.Second)
	h.setOwned([]uint16{1, 3}, t1)
	if want := []uint16{1, 2, 3, 7}; !slices.Equal(h.mine(), want) || !h.held.Has(2) {
		t.Fatalf("after losing 2: mine = %v, held has 2: %v", h.mine(), h.held.Has(2))
	}
	// A dump that started before the loss (or within settle) cannot
	// release it, even when it saw no flow in it.
	// (Bucket 7, held since the start, goes with the first empty dump.)
	if got := h.release(&table.Set{}, t1.Add(-time.Second), settle); !slices.Equal(got, []uint16{7}) {
		t.Fatalf("a dump started before the loss of 2 released %v, want [7]", got)
	}
	if got := h.release(&table.Set{}, t1.Add(500*time.Millisecond), settle); slices.Contains(got, 2) {
		t.Fatal("a dump started within settle of the loss released the lost bucket")
	}
	// Owned again: not held; lost again later: held with the new time.
	h.setOwned([]uint16{1, 2, 3}, t1.Add(time.Second))
	if h.held.Has(2) {
		t.Fatal("bucket 2 owned again but still held")
	}
	t2 := t1.Add(20 * time.Second)
	h.setOwned([]uint16{1, 3}, t2)
	if got := h.release(&table.Set{}, t2.Add(-time.Second), settle); slices.Contains(got, 2) {
		t.Fatal("a dump started before the second loss released the bucket")
	}
	busy = table.Set{}
	busy.Add(2)
	if got := h.release(&busy, t2.Add(2*time.Second), settle); len(got) != 0 {
		t.Fatalf("release with a flow in 2 = %v, want nothing", got)
	}
	got = h.release(&table.Set{}, t2.Add(3*time.Second), settle)
	if want := []uint16{2}; !slices.Equal(got, want) {
		t.Fatalf("release of the empty held buckets = %v, want %v", got, want)
	}
	if want := []uint16{1, 3}; !slices.Equal(h.mine(), want) || h.heldCount() != 0 {
		t.Fatalf("mine = %v held %d, want %v and none", h.mine(), h.heldCount(), want)
	}

	// Stop (a plan owning nothing): every owned bucket becomes held.
	h.setOwned(nil, t2.Add(4*time.Second))
	if want := []uint16{1, 3}; !slices.Equal(h.mine(), want) || h.heldCount() != 2 {
		t.Fatalf("after stop: mine = %v held %d, want %v both held", h.mine(), h.heldCount(), want)
	}
}

func TestFlowBuckets(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.100")
	web, _ := filter.ParsePorts("80,443")
	wide, _ := filter.ParsePorts("1-1000")
	dns, _ := filter.ParsePorts("53")
	rs := []filter.Rule{
		{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIPPort},
		{Proto: filter.ProtoTCP, Ports: wide, Affinity: filter.AffinityNetwork}, // 80 and 443 go by the first rule
		{Proto: filter.ProtoUDP, Ports: dns, Affinity: filter.AffinityIP},
	}
	c := netip.MustParseAddr("192.0.2.7")
	ts := []flows.Tuple{
		{Proto: filter.ProtoTCP, Src: c, SrcPort: 40000, Dst: vip, DstPort: 80},
		{Proto: filter.ProtoTCP, Src: c, SrcPort: 40001, Dst: netip.MustParseAddr("::ffff:10.0.0.100"), DstPort: 22},
		{Proto: filter.ProtoUDP, Src: c, SrcPort: 5000, Dst: vip, DstPort: 53},
		{Proto: filter.ProtoTCP, Src: c, SrcPort: 40002, Dst: netip.MustParseAddr("10.0.0.2"), DstPort: 80}, // not to the VIP
		{Proto: filter.ProtoUDP, Src: c, SrcPort: 5001, Dst: vip, DstPort: 54},                              // no rule
	}
	var want table.Set
	want.Add(filter.BucketOf(c, 40000, filter.AffinityIPPort))
	want.Add(filter.BucketOf(c, 0, filter.AffinityNetwork))
	want.Add(filter.BucketOf(c, 0, filter.AffinityIP))
	if got := flowBuckets(ts, []netip.Addr{vip}, rs); *got != want {
		t.Errorf("flowBuckets: %d buckets, want %d (%v)", got.Len(), want.Len(), ts)
	}
}
