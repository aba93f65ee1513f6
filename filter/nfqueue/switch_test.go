package nfqueue

import (
	"testing"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
)

// A planned switch decides the new flows of the buckets it moves by the
// packet's time; everything else keeps the decider's verdict.
func TestSwitched(t *testing.T) {
	tb := new(table.Table)
	tb[1], tb[2], tb[3] = 1, 2, 1
	sw := &plan.Switch{Until: 100, From: 110}
	sw.Lose.Add(1)
	sw.Gain.Add(2)
	pl := &planned{t: tb, sw: sw}
	owner := filter.Decision{Verdict: filter.Accept, Reason: filter.ReasonOwner, Opens: true}
	other := filter.Decision{Reason: filter.ReasonNotOwner, Opens: true}
	for _, c := range []struct {
		name string
		dec  filter.Decision
		b    uint16
		now  int64
		want filter.Verdict
	}{
		{"losing, before", owner, 1, 99, filter.Accept},
		{"losing, at the switch time", owner, 1, 100, filter.Drop},
		{"gaining, before the margin", other, 2, 109, filter.Drop},
		{"gaining, after", other, 2, 110, filter.Accept},
		{"not moving, owned", owner, 3, 1000, filter.Accept},
		{"not moving, another's", other, 0, 1000, filter.Drop},
		{"malformed stays dropped", filter.Decision{Reason: filter.ReasonMalformed, Opens: true}, 2, 1000, filter.Drop},
	} {
		c.dec.Bucket = c.b
		if got := switched(c.dec, pl, 1, c.now); got.Verdict != c.want {
			t.Errorf("%s: %v (%v), want %v", c.name, got.Verdict, got.Reason, c.want)
		}
	}
}
