package view

import (
	"testing"

	"github.com/webfarm/farm/farm/table"
)

func TestPlan(t *testing.T) {
	nodes := []Node{
		{Name: "web1", ID: 1, Weight: 100, State: StateUp, Alive: true},
		{Name: "web2", ID: 2, Weight: 100, State: StateUp, Alive: true},
		{Name: "web3", ID: 3, Weight: 100, State: StateUp, Alive: true},
	}
	w50 := uint32(50)
	tests := []struct {
		name    string
		c       Change
		wantErr bool
		check   func(t *testing.T, w WhatIf)
	}{
		{"stop moves only the node's buckets, to the others", Change{Node: "web2", Action: "stop"}, false, func(t *testing.T, w WhatIf) {
			if w.Moved != w.Before["web2"] || w.After["web2"] != 0 {
				t.Errorf("moved %d, web2 had %d and keeps %d", w.Moved, w.Before["web2"], w.After["web2"])
			}
			for _, m := range w.Moves {
				if m.From != "web2" {
					t.Errorf("a bucket moves from %s", m.From)
				}
			}
		}},
		{"drain is a stop for the table", Change{Node: "web1", Action: "drain"}, false, func(t *testing.T, w WhatIf) {
			if w.After["web1"] != 0 {
				t.Errorf("a draining node keeps %d buckets", w.After["web1"])
			}
		}},
		{"halving a weight moves buckets away from it", Change{Node: "web3", Action: "weight", Weight: &w50}, false, func(t *testing.T, w WhatIf) {
			if w.After["web3"] >= w.Before["web3"] || w.Moved == 0 {
				t.Errorf("web3 %d -> %d, moved %d", w.Before["web3"], w.After["web3"], w.Moved)
			}
		}},
		{"a new node takes only from the others", Change{Node: "web4", Action: "add", ID: 4}, false, func(t *testing.T, w WhatIf) {
			if w.Moved != w.After["web4"] || w.Moved == 0 {
				t.Errorf("moved %d, web4 gets %d", w.Moved, w.After["web4"])
			}
			if w.Share <= 0 || w.Share > 0.3 {
				t.Errorf("share %.3f", w.Share)
			}
		}},
		{"the shares add up", Change{Node: "web2", Action: "start"}, false, func(t *testing.T, w WhatIf) {
			sum := 0
			for _, n := range w.After {
				sum += n
			}
			if sum != table.Buckets || w.Moved != 0 {
				t.Errorf("after sums to %d, moved %d", sum, w.Moved)
			}
		}},
		{"unknown node", Change{Node: "web9", Action: "stop"}, true, nil},
		{"taken id", Change{Node: "web4", Action: "add", ID: 2}, true, nil},
		{"bad action", Change{Node: "web1", Action: "reboot"}, true, nil},
		{"weight without a value", Change{Node: "web1", Action: "weight"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Plan(nodes, tt.c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, w)
			}
		})
	}
}
