package agent

import (
	"testing"
	"time"

	"github.com/webfarm/farm/farm/table"
)

func TestHandoff(t *testing.T) {
	now := time.Unix(1000, 0)
	alive := map[uint8]bool{1: true, 2: true}
	serving := func(id uint8) bool { return alive[id] }
	var prev, cur table.Table
	for b := range prev {
		prev[b] = 2
		cur[b] = 2
	}
	cur[10], cur[11] = 1, 1  // node 1 gains two buckets from live node 2
	prev[12], cur[12] = 3, 1 // and one from node 3, which is dead
	h := &handoff{delay: 500 * time.Millisecond}

	eff, next := h.apply(&prev, &cur, 1, serving, now)
	if eff[10] != 0 || eff[11] != 0 {
		t.Errorf("buckets from a live node taken at once: %d %d", eff[10], eff[11])
	}
	if eff[12] != 1 {
		t.Errorf("bucket of a dead node not taken at once: %d", eff[12])
	}
	if eff[0] != 2 {
		t.Errorf("other buckets changed: %d", eff[0])
	}
	if want := now.Add(500 * time.Millisecond); !next.Equal(want) {
		t.Errorf("next = %v, want %v", next, want)
	}

	// A re-run before the delay (another view change) keeps them withheld,
	// even though prev now already gives them to node 1.
	eff, _ = h.apply(&cur, &cur, 1, serving, now.Add(100*time.Millisecond))
	if eff[10] != 0 {
		t.Error("withheld bucket released early on a re-run")
	}
	eff, next = h.apply(&cur, &cur, 1, serving, now.Add(500*time.Millisecond))
	if eff[10] != 1 || eff[11] != 1 || !next.IsZero() {
		t.Errorf("after the delay: %d %d next %v", eff[10], eff[11], next)
	}

	// Losing a bucket is immediate.
	back := prev
	eff, _ = h.apply(&cur, &back, 1, serving, now.Add(time.Second))
	if eff[10] != 2 {
		t.Errorf("lost bucket still ours: %d", eff[10])
	}
}
