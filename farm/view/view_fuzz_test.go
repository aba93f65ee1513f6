package view

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/webfarm/farm/farm/table"
)

// fuzzNodes builds a member list from bytes, 8 per node: what gossip can
// deliver from peers (any id, including 0 and ids above table.MaxID that
// hand-built lists may hold, any weight, any state string, names that may
// repeat).
func fuzzNodes(data []byte) []Node {
	states := []State{StateUp, StateStopped, StateDraining, StateFailed, StateDown, "", "UP", "bogus"}
	var nodes []Node
	for len(data) >= 8 && len(nodes) < 64 {
		d := data[:8]
		data = data[8:]
		w := binary.BigEndian.Uint32(d[2:6])
		switch d[6] & 3 { // mostly ordinary weights, sometimes any uint32
		case 0:
			w %= 1001
		case 1:
			w = 100
		case 2:
			w %= 4
		}
		fl := d[7]
		nodes = append(nodes, Node{
			Name:     fmt.Sprintf("n%d", d[0]%48),
			ID:       d[1],
			Weight:   w,
			State:    states[d[6]>>5],
			Addr:     "10.0.0.1:7946",
			Alive:    fl&1 != 0,
			Left:     fl&2 != 0,
			Suspect:  fl&4 != 0,
			Excluded: fl&8 != 0,
		})
	}
	return nodes
}

// FuzzCompute checks the view and owner table every node computes from its
// member list, over arbitrary lists: no panic; shares add up to 4096 (every
// bucket served) when some node may own buckets, else 0; only owners own
// buckets; the table does not depend on the order of the list; removing one
// owner moves only that owner's buckets; the majority counts follow the
// flags. It also runs the console's what-if (Plan) over the same list.
func FuzzCompute(f *testing.F) {
	node := func(name byte, id uint8, weightKind byte, w uint32, state byte, flags byte) []byte {
		b := []byte{name, id, 0, 0, 0, 0, state<<5 | weightKind, flags}
		binary.BigEndian.PutUint32(b[2:6], w)
		return b
	}
	join := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	f.Add(join(node(1, 1, 1, 0, 0, 1), node(2, 2, 1, 0, 0, 1), node(3, 3, 1, 0, 0, 1)), true, []byte("w\x01\x00\x00\x00\x32"))
	f.Add(join(node(1, 1, 0, 50, 0, 1), node(2, 2, 0, 200, 0, 1), node(3, 3, 3, 0, 1, 1), node(4, 4, 0, 100, 4, 0)), false, []byte("s\x02"))
	f.Add(join(node(1, 7, 1, 0, 0, 1), node(2, 7, 1, 0, 0, 1), node(3, 0, 1, 0, 0, 1), node(4, 251, 1, 0, 0, 1)), true, []byte("a\x05\x09"))
	f.Add(join(node(1, 1, 2, 0, 0, 1), node(2, 2, 2, 0, 0, 1)), false, []byte("r\x01"))                                          // standbys only
	f.Add(join(node(1, 1, 3, 0xffffffff, 0, 1), node(2, 2, 3, 1, 0, 1), node(3, 3, 3, 0x80000000, 0, 5)), true, []byte("d\x00")) // extreme weights
	f.Add(join(node(1, 1, 1, 0, 0, 3), node(2, 2, 1, 0, 0, 9), node(3, 3, 1, 0, 0, 0)), false, []byte{})
	f.Add([]byte{}, false, []byte("a\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte, witness bool, change []byte) {
		nodes := fuzzNodes(data)
		in := slices.Clone(nodes)
		owners := Owners(in)
		v := Compute(in, witness)

		// Owners: alive, up, a valid id, each id once.
		ids := map[uint8]bool{}
		for _, o := range owners {
			if o.ID == 0 || ids[o.ID] {
				t.Fatalf("owner id %d is 0 or repeated: %v", o.ID, owners)
			}
			ids[o.ID] = true
			if !slices.ContainsFunc(nodes, func(n Node) bool { return n.ID == o.ID && n.Alive && n.State == StateUp }) {
				t.Fatalf("owner %d is no alive up node", o.ID)
			}
		}
		canOwn := false
		for id := range ids {
			canOwn = canOwn || id <= table.MaxID
		}

		// The table: every bucket served when someone can serve, by an owner.
		sum := 0
		for id, n := range v.Shares {
			if !ids[id] {
				t.Fatalf("node %d owns %d buckets but is no owner (owners %v)", id, n, owners)
			}
			sum += n
		}
		if want := map[bool]int{true: table.Buckets, false: 0}[canOwn]; sum != want {
			t.Fatalf("shares add up to %d, want %d (owners %v, shares %v)", sum, want, owners, v.Shares)
		}
		if !maps.Equal(v.Shares, v.Table.Shares()) {
			t.Fatalf("Shares %v are not the table's %v", v.Shares, v.Table.Shares())
		}

		// The majority counts.
		known, healthy := 0, 0
		for _, n := range nodes {
			if !n.Left && !n.Excluded {
				known++
				if n.Alive && !n.Suspect {
					healthy++
				}
			}
		}
		if v.Known != known || v.Healthy != healthy || v.Quorum != HasQuorum(known, healthy, witness) {
			t.Fatalf("known %d healthy %d quorum %v, want %d %d %v", v.Known, v.Healthy, v.Quorum, known, healthy, HasQuorum(known, healthy, witness))
		}
		if !slices.IsSortedFunc(v.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) }) {
			t.Fatalf("nodes not sorted by name")
		}

		// Every node computes the same table from the same members, in
		// whatever order serf lists them. (Names are unique in serf.)
		uniq := uniqueNames(nodes)
		a, b := slices.Clone(uniq), slices.Clone(uniq)
		slices.Reverse(b)
		if len(b) > 1 {
			b[0], b[len(b)/2] = b[len(b)/2], b[0]
		}
		if va, vb := Compute(a, witness), Compute(b, witness); *va.Table != *vb.Table || va.Quorum != vb.Quorum {
			t.Fatalf("the table depends on the order of the member list")
		}

		// Losing one owner moves only its buckets.
		if len(owners) > 0 && len(change) > 0 {
			gone := owners[int(change[0])%len(owners)]
			rest := slices.DeleteFunc(slices.Clone(owners), func(m table.Member) bool { return m.ID == gone.ID })
			before, after := table.Compute(owners), table.Compute(rest)
			for i := range before {
				if before[i] != after[i] && before[i] != gone.ID {
					t.Fatalf("removing %d moved bucket %d from %d to %d", gone.ID, i, before[i], after[i])
				}
			}
		}

		// The what-if over the same list (names unique, as serf has them):
		// who has how many buckets before and after, and what moves from
		// whom to whom, by the name of the node that owns them.
		c := fuzzChange(change, uniq)
		w, err := Plan(uniq, c)
		if err != nil {
			return
		}
		bt, bn := table.Compute(Owners(uniq)), ownerNames(uniq)
		after := applyChange(uniq, c)
		at, an := table.Compute(Owners(after)), ownerNames(after)
		before, afterShares, moves := map[string]int{}, map[string]int{}, map[Move]int{}
		for i := range bt {
			if bt[i] != 0 {
				before[bn[bt[i]]]++
			}
			if at[i] != 0 {
				afterShares[an[at[i]]]++
			}
			if bt[i] != at[i] {
				moves[Move{From: bn[bt[i]], To: an[at[i]]}]++
			}
		}
		got := map[Move]int{}
		for _, m := range w.Moves {
			got[Move{From: m.From, To: m.To}] += m.Buckets
		}
		if !maps.Equal(w.Before, before) || !maps.Equal(w.After, afterShares) || !maps.Equal(got, moves) {
			t.Fatalf("what-if of %+v over %+v:\nbefore %v, want %v\nafter %v, want %v\nmoves %v, want %v",
				c, uniq, w.Before, before, w.After, afterShares, got, moves)
		}
		moved := 0
		for _, n := range moves {
			moved += n
		}
		if w.Moved != moved || w.Share != float64(moved)/table.Buckets {
			t.Fatalf("what-if moved %d (share %v), want %d", w.Moved, w.Share, moved)
		}
	})
}

// ownerNames names each owner id by the node that owns it (the rule of
// Owners: the alive node with the smallest name holds an id; it owns
// buckets when it is up).
func ownerNames(nodes []Node) map[uint8]string {
	sorted := slices.SortedFunc(slices.Values(nodes), func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	names, seen := map[uint8]string{}, map[uint8]bool{}
	for _, n := range sorted {
		if !n.Alive || n.ID == 0 || seen[n.ID] {
			continue
		}
		seen[n.ID] = true
		if n.State == StateUp {
			names[n.ID] = n.Name
		}
	}
	return names
}

// applyChange is the farm after a valid change c.
func applyChange(nodes []Node, c Change) []Node {
	after := slices.Clone(nodes)
	i := slices.IndexFunc(after, func(n Node) bool { return n.Name == c.Node })
	switch c.Action {
	case "weight":
		after[i].Weight = *c.Weight
	case "stop":
		after[i].State = StateStopped
	case "drain":
		after[i].State = StateDraining
	case "start":
		after[i].State = StateUp
	case "remove":
		after = slices.Delete(after, i, i+1)
	case "add":
		w := uint32(100)
		if c.Weight != nil {
			w = *c.Weight
		}
		after = append(after, Node{Name: c.Node, ID: c.ID, Weight: w, State: StateUp, Alive: true})
	}
	return after
}

// fuzzChange reads a what-if change from bytes: an action letter, then a
// node (by index into nodes, or a new name), then weight or id bytes.
func fuzzChange(b []byte, nodes []Node) Change {
	var c Change
	if len(b) == 0 {
		return c
	}
	c.Action = map[byte]string{'w': "weight", 's': "stop", 'd': "drain", 't': "start", 'a': "add", 'r': "remove"}[b[0]]
	if c.Action == "" {
		c.Action = string(b[:1])
	}
	if len(b) > 1 {
		if i := int(b[1]); i < len(nodes) {
			c.Node = nodes[i].Name
		} else {
			c.Node = fmt.Sprintf("new%d", i)
		}
	}
	if len(b) > 2 {
		c.ID = b[2]
	}
	if len(b) >= 7 {
		w := binary.BigEndian.Uint32(b[3:7])
		c.Weight = &w
	}
	return c
}

// uniqueNames keeps the first node of each name.
func uniqueNames(nodes []Node) []Node {
	seen := map[string]bool{}
	var out []Node
	for _, n := range nodes {
		if !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, n)
		}
	}
	return out
}
