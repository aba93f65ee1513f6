package view

import "testing"

func TestHasQuorum(t *testing.T) {
	tests := []struct {
		known, healthy int
		witness        bool
		want           bool
	}{
		{1, 1, false, true},  // a farm of one
		{3, 3, false, true},  // all well
		{3, 2, false, true},  // majority side
		{3, 1, true, false},  // minority side: the witness does not help
		{2, 1, true, true},   // even split, witness reachable
		{2, 1, false, false}, // even split, cut off from the witness too
		{4, 2, true, true},
		{4, 2, false, false},
		{5, 2, true, false},
		{0, 0, false, true},
	}
	for _, tc := range tests {
		if got := HasQuorum(tc.known, tc.healthy, tc.witness); got != tc.want {
			t.Errorf("HasQuorum(%d, %d, %v) = %v, want %v", tc.known, tc.healthy, tc.witness, got, tc.want)
		}
	}
}

func TestComputeView(t *testing.T) {
	nodes := []Node{
		{Name: "web3", ID: 3, Weight: 100, State: StateUp, Alive: true},
		{Name: "web1", ID: 1, Weight: 100, State: StateUp, Alive: true},
		{Name: "web2", ID: 2, Weight: 100, State: StateDown, Alive: false},
		{Name: "web4", ID: 4, Weight: 100, State: StateUp, Alive: false, Left: true},
		{Name: "web5", ID: 5, Weight: 100, State: StateStopped, Alive: true},
	}
	v := Compute(nodes, false)
	if v.Known != 4 || v.Healthy != 3 || !v.Quorum {
		t.Fatalf("known %d healthy %d quorum %v, want 4 3 true", v.Known, v.Healthy, v.Quorum)
	}
	if v.Shares[2] != 0 || v.Shares[4] != 0 || v.Shares[5] != 0 {
		t.Errorf("down, left and stopped nodes own buckets: %v", v.Shares)
	}
	if v.Shares[1]+v.Shares[3] != 4096 {
		t.Errorf("up nodes do not own every bucket: %v", v.Shares)
	}
	if v.Nodes[0].Name != "web1" {
		t.Errorf("nodes not sorted by name: %v", v.Nodes)
	}
}

func TestOwnersDuplicateID(t *testing.T) {
	nodes := []Node{
		{Name: "b", ID: 1, Weight: 100, State: StateUp, Alive: true},
		{Name: "a", ID: 1, Weight: 100, State: StateStopped, Alive: true},
		{Name: "c", ID: 2, Weight: 100, State: StateUp, Alive: true},
	}
	// "a" keeps id 1 (smaller name) and is stopped, so "b" owns nothing.
	got := Owners(nodes)
	if len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("Owners = %v, want only id 2", got)
	}
}

// Dynamic quorum: nodes that died one after another (and were excluded
// while the survivors held quorum) no longer count, so the last two decide
// with the witness and the last one alone serves.
func TestComputeExcluded(t *testing.T) {
	nodes := []Node{
		{Name: "web1", ID: 1, Weight: 100, State: StateUp, Alive: true},
		{Name: "web2", ID: 2, State: StateDown, Excluded: true},
		{Name: "web3", ID: 3, State: StateDown},
	}
	if v := Compute(nodes, false); v.Known != 2 || v.Quorum {
		t.Fatalf("known %d quorum %v, want 2 false (even split, no witness)", v.Known, v.Quorum)
	}
	if v := Compute(nodes, true); !v.Quorum {
		t.Fatal("even split with the witness reachable: want quorum")
	}
	nodes[2].Excluded = true
	if v := Compute(nodes, false); v.Known != 1 || !v.Quorum {
		t.Fatalf("known %d quorum %v, want 1 true", v.Known, v.Quorum)
	}
}
