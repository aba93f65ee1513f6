package kernel

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

func TestPlanSets(t *testing.T) {
	tab := new(table.Table)
	for b := range tab {
		tab[b] = uint8(1 + b%3) // 1, 2, 3, 1, ...
	}
	takeover := new(table.Set)
	for _, b := range []uint16{0, 1, 2, 3, 4095} {
		takeover.Add(b)
	}
	tests := []struct {
		name             string
		p                plan.Plan
		self             uint8
		nOwned           int
		firstOwned       []uint16
		reset            []uint16
		wantNothingOwned bool
	}{
		{name: "zero plan serves nobody", p: plan.Plan{}, self: 1, wantNothingOwned: true},
		{name: "all-zero table serves nobody", p: plan.Plan{Table: new(table.Table)}, self: 1, wantNothingOwned: true},
		{name: "a third, window closed", p: plan.Plan{Table: tab}, self: 1, nOwned: 1366, firstOwned: []uint16{0, 3, 6}},
		{name: "reset only where owned", p: plan.Plan{Table: tab, Reset: takeover}, self: 1, nOwned: 1366, firstOwned: []uint16{0, 3, 6}, reset: []uint16{0, 3, 4095}},
		{name: "another node", p: plan.Plan{Table: tab, Reset: takeover}, self: 2, nOwned: 1365, firstOwned: []uint16{1, 4, 7}, reset: []uint16{1}},
		{name: "id 0 owns nothing", p: plan.Plan{Table: new(table.Table)}, self: 0, wantNothingOwned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owned, reset := planSets(tt.p, tt.self)
			if tt.wantNothingOwned {
				if len(owned) != 0 || len(reset) != 0 {
					t.Fatalf("owned %d, reset %v; want nothing", len(owned), reset)
				}
				return
			}
			if len(owned) != tt.nOwned || !slices.Equal(owned[:3], tt.firstOwned) || !slices.IsSorted(owned) {
				t.Errorf("owned: %d buckets starting %v, want %d starting %v, sorted", len(owned), owned[:3], tt.nOwned, tt.firstOwned)
			}
			if !slices.Equal(reset, tt.reset) {
				t.Errorf("reset = %v, want %v", reset, tt.reset)
			}
		})
	}
}

func testSpec() rules.Spec {
	web, _ := filter.ParsePorts("80")
	return rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}, Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: web}}}
}

func TestApplyNotRunning(t *testing.T) {
	e := New(testSpec(), nil)
	if err := e.Apply(plan.Plan{}); err != errNotRunning {
		t.Errorf("Apply before Run = %v, want errNotRunning", err)
	}
	if st := e.Stats(); st != (Stats{}) {
		t.Errorf("Stats before Run = %+v", st)
	}
	select {
	case <-e.Ready():
		t.Error("Ready before Run")
	default:
	}
}
