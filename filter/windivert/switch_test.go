package windivert

import (
	"net/netip"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/filter"
)

// A planned switch decides the SYNs of the buckets it moves by the wall
// clock: a bucket being lost is answered before its time, not after; one
// being gained not before its time, and from it on.
func TestCoreSwitch(t *testing.T) {
	const c4, v4 = "192.0.2.1", "10.0.0.100"
	b := filter.BucketOf(netip.MustParseAddr(c4), 40000, filter.AffinityIP)
	past, future := time.Now().Add(-time.Second).UnixNano(), time.Now().Add(time.Hour).UnixNano()
	for _, c := range []struct {
		name        string
		owner       uint8 // of b in the table
		lose        bool
		until, from int64
		want        filter.Verdict
	}{
		{"losing, before the switch time", 7, true, future, future, filter.Accept},
		{"losing, after the switch time", 7, true, past, future, filter.Drop},
		{"gaining, before the switch time plus the margin", 3, false, past, future, filter.Drop},
		{"gaining, after", 3, false, past, past, filter.Accept},
	} {
		core := newTestCore(t)
		tb := fill(7)
		tb[b] = c.owner
		core.Decider().SetTable(tb)
		sw := &plan.Switch{Until: c.until, From: c.from}
		if c.lose {
			sw.Lose.Add(b)
		} else {
			sw.Gain.Add(b)
		}
		core.SetSwitch(tb, sw)
		if got := core.Decide(pkt(c4, v4, tcpHdr(40000, 80, syn), 0), 1); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		core.SetSwitch(tb, nil)
	}
}
