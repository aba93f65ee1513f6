package view

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/webfarm/farm/farm/table"
)

// Change is a proposed change to the farm, for a what-if before doing it.
type Change struct {
	// Node is the node changed, or the name of the node to add.
	Node string `json:"node"`
	// Action is "weight", "stop", "drain", "start", "add" or "remove".
	Action string `json:"action"`
	// Weight is the new weight (weight, add; add defaults to 100).
	Weight *uint32 `json:"weight,omitempty"`
	// ID is the new node's id (add).
	ID uint8 `json:"id,omitempty"`
}

// Move is a number of buckets going from one node to another ("" is nobody).
type Move struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Buckets int    `json:"buckets"`
}

// WhatIf is what a Change would do to the owner table.
type WhatIf struct {
	Change Change `json:"change"`
	// Before and After give each node's buckets.
	Before map[string]int `json:"before"`
	After  map[string]int `json:"after"`
	// Moves lists the bucket movements, largest first; Moved sums them.
	Moves []Move `json:"moves"`
	Moved int    `json:"moved"`
	// Share is Moved as a fraction of all buckets.
	Share float64 `json:"share"`
}

// Plan computes, without changing anything, how the owner table of the
// given nodes would change under c: the same computation every node makes,
// so the answer is what would happen.
func Plan(nodes []Node, c Change) (WhatIf, error) {
	after := slices.Clone(nodes)
	idx := slices.IndexFunc(after, func(n Node) bool { return n.Name == c.Node })
	if c.Action != "add" && idx < 0 {
		return WhatIf{}, fmt.Errorf("no node %q in the farm", c.Node)
	}
	switch c.Action {
	case "weight":
		if c.Weight == nil || *c.Weight > 1000 {
			return WhatIf{}, fmt.Errorf("weight: give a weight 0..1000")
		}
		after[idx].Weight = *c.Weight
	case "stop":
		after[idx].State = StateStopped
	case "drain":
		after[idx].State = StateDraining
	case "start":
		after[idx].State = StateUp
	case "remove":
		after = slices.Delete(after, idx, idx+1)
	case "add":
		if idx >= 0 {
			return WhatIf{}, fmt.Errorf("a node named %q is already in the farm", c.Node)
		}
		if c.ID < 1 || c.ID > table.MaxID {
			return WhatIf{}, fmt.Errorf("id: give the new node's id 1..%d", table.MaxID)
		}
		for _, n := range nodes {
			if n.ID == c.ID && n.Alive {
				return WhatIf{}, fmt.Errorf("id %d is %s's", c.ID, n.Name)
			}
		}
		w := uint32(100)
		if c.Weight != nil {
			w = *c.Weight
		}
		after = append(after, Node{Name: c.Node, ID: c.ID, Weight: w, State: StateUp, Alive: true})
	default:
		return WhatIf{}, fmt.Errorf("action %q: use weight, stop, drain, start, add or remove", c.Action)
	}
	bt, at := table.Compute(Owners(nodes)), table.Compute(Owners(after))
	before, afterNames := namesByOwner(nodes), namesByOwner(after)
	w := WhatIf{Change: c, Before: map[string]int{}, After: map[string]int{}}
	moves := map[[2]string]int{}
	for b := range bt {
		from, to := before[bt[b]], afterNames[at[b]]
		if bt[b] != 0 {
			w.Before[from]++
		}
		if at[b] != 0 {
			w.After[to]++
		}
		if bt[b] != at[b] {
			moves[[2]string{from, to}]++
			w.Moved++
		}
	}
	for k, n := range moves {
		w.Moves = append(w.Moves, Move{From: k[0], To: k[1], Buckets: n})
	}
	slices.SortFunc(w.Moves, func(a, b Move) int {
		if c := cmp.Compare(b.Buckets, a.Buckets); c != 0 {
			return c
		}
		return cmp.Compare(a.From+"\x00"+a.To, b.From+"\x00"+b.To)
	})
	w.Share = float64(w.Moved) / table.Buckets
	return w, nil
}

// namesByOwner names each id by the node that owns its buckets, by Owners'
// rule (alive, and the smallest name when two claim the id), so a new node
// that reuses a dead node's id is named, not the dead one.
func namesByOwner(nodes []Node) map[uint8]string {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	names := map[uint8]string{}
	for _, n := range sorted {
		if n.ID == 0 || !n.Alive {
			continue
		}
		if _, dup := names[n.ID]; !dup {
			names[n.ID] = n.Name
		}
	}
	return names
}
