// Package view is the farm as one node sees it: its members, their states,
// whether this node is on the majority side, and the bucket owner table they
// imply. It is pure: farm/member fills it from serf, the planner (farm/plan)
// and the console read it, and tests build it by hand.
package view

import (
	"cmp"
	"slices"

	"github.com/webfarm/farm/farm/table"
)

// State is a node's farm state as carried in its serf tags. Only StateUp nodes
// own buckets.
type State string

// The node states of the farm contract (`farm status`).
const (
	StateUp       State = "up"
	StateStopped  State = "stopped"
	StateDraining State = "draining"
	StateFailed   State = "failed" // its application is down
	StateDown     State = "down"   // unreachable: derived from serf, never a tag
)

// Node is one farm member as seen from here.
type Node struct {
	Name   string
	ID     uint8
	Weight uint32
	State  State
	Addr   string
	// Alive is false when serf considers the node failed or gone.
	Alive bool
	// Left is true when the node left gracefully: it no longer counts
	// towards the majority.
	Left bool
	// Suspect is true while the failure detector doubts the node but has
	// not declared it dead yet.
	Suspect bool
	// Kernel is true when the node's data path runs in its kernel (the
	// kernel engine's owner table), which goes on answering its buckets
	// while its agent is frozen.
	Kernel bool
	// Excluded is true for a node that has been down for a while, declared
	// so while this node held quorum: it no longer counts towards the
	// majority (dynamic quorum), so a farm can lose nodes one after another
	// down to the last one (plus the witness for the last two).
	Excluded bool
	// SwitchAt is the switch time (unix ns; 0 for none) the node announced
	// with its latest change of state or weight: every node keeps the old
	// table for the buckets that change moves until then (farm/plan). Read
	// from the node's tags: untrusted, bounded there and by the planner.
	SwitchAt int64
}

// View is a snapshot of the farm from this node: the members, the owner table
// they imply and each node's share of it.
type View struct {
	Nodes  []Node
	Table  *table.Table
	Shares map[uint8]int
	// Fresh is true when this node heard a gossip packet recently (see
	// member's freshAfter) from enough of the known nodes to be a majority
	// with itself (the witness breaking a tie). Quorum follows the failure
	// detector, which on the minority side of a split lags: a node there
	// still counts a majority while it has declared only some of the other
	// side dead. Serving, and taking over a dead node's buckets, need Fresh
	// too, so such a node stops before the other side takes its buckets
	// and never answers buckets the other side still serves.
	Fresh bool
	// Quorum is false when this node is on the minority side of a
	// partition (or lost an even split without reaching the witness): it
	// must not serve, since the other side is taking over its share.
	Quorum bool
	// Joined is false until this node has reached a peer of its join list
	// (or found none for a while, as the first node of a new farm does): a
	// node that does not know the farm yet must not serve.
	Joined bool
	// Known counts the nodes that count towards the majority (all but
	// those that left gracefully); Healthy those alive and not suspected.
	Known, Healthy int
}

// HasQuorum is the partition rule: a node keeps serving while the nodes it
// sees healthy (itself included) are a majority of the known nodes. An even
// split (every 2-node farm) is broken by the witness: the side that can still
// reach it serves. Being alone in a farm of one is a majority.
func HasQuorum(known, healthy int, witnessOK bool) bool {
	switch {
	case known <= 1 || 2*healthy > known:
		return true
	case 2*healthy == known:
		return witnessOK
	}
	return false
}

// Owners returns the members that own buckets: alive, state up, with a valid
// id. When two alive nodes claim the same id (a configuration mistake), the one
// with the smaller name keeps it, so every node still computes the same table.
func Owners(nodes []Node) []table.Member {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	seen := map[uint8]bool{}
	var out []table.Member
	for _, n := range sorted {
		if !n.Alive || n.ID == 0 || seen[n.ID] {
			continue
		}
		seen[n.ID] = true
		if n.State != StateUp {
			continue
		}
		out = append(out, table.Member{ID: n.ID, Weight: n.Weight})
	}
	return out
}

// Compute derives the view from a member list; witnessOK tells whether the
// configured witness answers (true when none is configured, since then an
// even split cannot be broken and both sides would stop).
func Compute(nodes []Node, witnessOK bool) View {
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	t := table.Compute(Owners(nodes))
	v := View{Nodes: nodes, Table: t, Shares: t.Shares()}
	for _, n := range nodes {
		if n.Left || n.Excluded {
			continue
		}
		v.Known++
		if n.Alive && !n.Suspect {
			v.Healthy++
		}
	}
	v.Quorum = HasQuorum(v.Known, v.Healthy, witnessOK)
	return v
}
