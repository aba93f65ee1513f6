package table

// The construction itself (see compute.go). It runs in the tests, which
// compare its columns with what Compute uses, and when columns.bin is
// regenerated (go test -run TestColumnData -update); never in the agent.

import (
	"fmt"
	"slices"
)

// builder holds the construction state for the prefix of ids built so far.
type builder struct {
	cols   []*column // cols[x] for x = 1..built; cols[0] is nil
	first  column    // per bucket, the smallest key among built ids
	second column    // and the second smallest (^0 if none)
	count  [MaxID + 1]int
	pair   []int32 // (first, second) owner counts, index y*(MaxID+1)+z
}

func newBuilder() *builder {
	bd := &builder{cols: make([]*column, 1, MaxID+1), pair: make([]int32, (MaxID+1)*(MaxID+1))}
	for b := range bd.first {
		bd.first[b], bd.second[b] = ^uint32(0), ^uint32(0)
	}
	return bd
}

func (bd *builder) growTo(maxID int) {
	for len(bd.cols) <= maxID {
		bd.add()
	}
}

func (bd *builder) add() {
	k := len(bd.cols)
	st := &stage{bd: bd, k: k}
	baseColumn(k, &st.val)
	for b := range st.tie {
		st.tie[b] = tieKey(b, k)
	}
	if k >= 2 {
		st.balance()
	}
	col := new(column)
	for b := range col {
		c := st.key(b, st.val[b])
		col[b] = c
		if c < bd.first[b] {
			bd.second[b], bd.first[b] = bd.first[b], c
		} else if c < bd.second[b] {
			bd.second[b] = c
		}
	}
	bd.cols = append(bd.cols, col)
	clear(bd.count[:])
	for y := 0; y <= k; y++ {
		clear(bd.pair[y*(MaxID+1) : y*(MaxID+1)+k+1])
	}
	for b := range bd.first {
		bd.count[uint8(bd.first[b])]++
		if k >= 2 {
			bd.pair[int(uint8(bd.first[b]))*(MaxID+1)+int(uint8(bd.second[b]))]++
		}
	}
}

// stage builds column k against the prefix {1..k-1}.
type stage struct {
	bd  *builder
	k   int
	val [Buckets]uint16 // value of column k per bucket
	inv [Buckets]uint16 // bucket holding each value
	tie [Buckets]uint32

	group [][]uint16 // buckets by current first owner
	f, h  []int      // per owner: buckets where k would be first / second
	want0 []int      // exact number of buckets k must take from each owner
	want1 []int      // buckets where k should become second, per owner
	pn    []int32    // (first, second) counts of prefix {1..k} as projected
	phase int
	y     int // owner being fixed
}

func (st *stage) key(b int, v uint16) uint32 { return uint32(v)<<valueShift | st.tie[b] }

// cat says where column k's value v puts k in bucket b: 0 first, 1 second,
// 2 further back.
func (st *stage) cat(b int, v uint16) int {
	c := st.key(b, v)
	switch {
	case c < st.bd.first[b]:
		return 0
	case c < st.bd.second[b]:
		return 1
	}
	return 2
}

func (st *stage) owner(b int) int  { return int(uint8(st.bd.first[b])) }
func (st *stage) second(b int) int { return int(uint8(st.bd.second[b])) }

func (st *stage) account(b, c, sign int) {
	y := st.owner(b)
	switch c {
	case 0:
		st.f[y] += sign
	case 1:
		st.h[y] += sign
	}
	if c <= 1 && st.k >= 3 {
		st.pn[y*st.k+st.second(b)] -= int32(sign)
	}
}

func (st *stage) balance() {
	k, bd := st.k, st.bd
	for b, v := range st.val {
		st.inv[v] = uint16(b)
	}
	st.group = make([][]uint16, k)
	for y := 1; y < k; y++ {
		st.group[y] = make([]uint16, 0, bd.count[y])
	}
	for b := range bd.first {
		y := st.owner(b)
		st.group[y] = append(st.group[y], uint16(b))
	}
	st.f, st.h = make([]int, k+1), make([]int, k+1)
	st.pn = make([]int32, k*k)
	for y := 1; y < k; y++ {
		copy(st.pn[y*k:y*k+k], bd.pair[y*(MaxID+1):y*(MaxID+1)+k])
	}
	for b, v := range st.val {
		st.account(b, st.cat(b, v), 1)
	}

	// Exact targets for {1..k}: floor or ceil of Buckets/k each. The ceil
	// goes to those that would naturally keep the most, to need few swaps.
	q, rem := Buckets/k, Buckets%k
	nat := make([]int, k+1)
	var cand []int
	for y := 1; y < k; y++ {
		nat[y] = bd.count[y] - st.f[y]
		nat[k] += st.f[y]
		if bd.count[y] > q {
			cand = append(cand, y)
		}
	}
	cand = append(cand, k)
	slices.SortFunc(cand, func(a, c int) int {
		if nat[a] != nat[c] {
			return nat[c] - nat[a]
		}
		ha, hc := hash3(tagCeil, uint64(k), uint64(a)), hash3(tagCeil, uint64(k), uint64(c))
		if ha < hc {
			return -1
		}
		return 1
	})
	target := make([]int, k+1)
	for y := 1; y <= k; y++ {
		target[y] = q
	}
	for _, y := range cand[:rem] {
		target[y] = q + 1
	}
	st.want0, st.want1 = make([]int, k+1), make([]int, k+1)
	sum, prev := 0, 0
	for y := 1; y < k; y++ {
		st.want0[y] = bd.count[y] - target[y]
		sum += target[y]
		w := (2*sum + k - 1) / (2 * (k - 1)) // round(sum/(k-1))
		st.want1[y], prev = w-prev, w
	}

	// Phase 1: exact first-owner counts (partners may change only between
	// second and further back, or in a way that helps their own owner).
	st.phase = 1
	for y := 1; y < k; y++ {
		st.y = y
		for st.f[y] != st.want0[y] {
			need := st.f[y] < st.want0[y]
			cands := st.candidates(y, func(_, c int) bool { return (c != 0) == need }, st.distFirst, -1)
			ok := false
			for _, b := range cands {
				if st.move(int(b), func(c int) bool { return (c == 0) == need }) {
					ok = true
					break
				}
			}
			if !ok {
				// The construction does not depend on input: the tests
				// build all MaxID columns, so this cannot happen at run time.
				panic(fmt.Sprintf("table: construction stuck at id %d, owner %d", k, y))
			}
		}
	}
	if k < 3 {
		return
	}
	// Phase 2: k second in its share of each owner's buckets (soft).
	st.phase = 2
	for y := 1; y < k; y++ {
		st.y = y
		for iter := 0; st.h[y] != st.want1[y] && iter < 64; iter++ {
			need := st.h[y] < st.want1[y]
			newc := 2
			if need {
				newc = 1
			}
			cands := st.candidates(y, func(_, c int) bool { return c != 0 && (c == 2) == need }, st.distSecond, newc)
			if !st.moveAny(cands, newc) {
				break
			}
		}
	}
	// Phase 3: spread each owner's (first, second) pairs evenly (soft).
	st.phase = 3
	for y := 1; y < k; y++ {
		st.y = y
		for iter := 0; iter < 200; iter++ {
			zmax, zmin := -1, -1
			for z := 1; z < k; z++ {
				if z == y {
					continue
				}
				if zmax < 0 || st.pn[y*k+z] > st.pn[y*k+zmax] {
					zmax = z
				}
				if zmin < 0 || st.pn[y*k+z] < st.pn[y*k+zmin] {
					zmin = z
				}
			}
			if st.pn[y*k+zmax]-st.pn[y*k+zmin] <= 1 {
				break
			}
			up := st.candidates(y, func(b, c int) bool { return c == 2 && st.second(b) == zmax }, st.distSecond, -1)
			down := st.candidates(y, func(b, c int) bool { return c == 1 && st.second(b) == zmin }, st.distSecond, -1)
			if len(up) == 0 || len(down) == 0 || !st.moveAny(up, 1) || !st.moveAny(down, 2) {
				break
			}
		}
	}
}

func (st *stage) distFirst(b int) int {
	return absInt(int(st.bd.first[b]>>valueShift) - int(st.val[b]))
}

func (st *stage) distSecond(b int) int {
	return absInt(int(st.bd.second[b]>>valueShift) - int(st.val[b]))
}

func absInt(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

// pairCost is the change of the squared error of bucket b's (first, second)
// pair count if k moves to category newc there (scaled by k(k-1)).
func (st *stage) pairCost(b, newc int) int64 {
	oc := st.cat(b, st.val[b])
	var d int64
	switch {
	case oc <= 1 && newc == 2:
		d = 1
	case oc == 2 && newc <= 1:
		d = -1
	default:
		return 0
	}
	kk := int64(st.k * (st.k - 1))
	e := int64(st.pn[st.owner(b)*st.k+st.second(b)])*kk - Buckets
	return 2*e*d*kk + kk*kk
}

// candidates lists owner y's buckets whose category satisfies sel, best
// first: by pair cost when newc >= 0, then by value distance, then index.
func (st *stage) candidates(y int, sel func(b, c int) bool, dist func(int) int, newc int) []uint16 {
	type cand struct {
		cost int64
		dist int
		b    uint16
	}
	var cs []cand
	for _, b := range st.group[y] {
		if sel(int(b), st.cat(int(b), st.val[b])) {
			c := cand{dist: dist(int(b)), b: b}
			if newc >= 0 {
				c.cost = st.pairCost(int(b), newc)
			}
			cs = append(cs, c)
		}
	}
	slices.SortFunc(cs, func(a, c cand) int {
		if a.cost != c.cost {
			if a.cost < c.cost {
				return -1
			}
			return 1
		}
		if a.dist != c.dist {
			return a.dist - c.dist
		}
		return int(a.b) - int(c.b)
	})
	out := make([]uint16, len(cs))
	for i, c := range cs {
		out[i] = c.b
	}
	return out
}

func (st *stage) moveAny(cands []uint16, newc int) bool {
	for _, b := range cands {
		if st.move(int(b), func(c int) bool { return c == newc }) {
			return true
		}
	}
	return false
}

// move gives bucket b the nearest value that puts it in an accepted
// category, swapping values with the bucket that holds it, if that
// partner's category stays acceptable.
func (st *stage) move(b int, accept func(int) bool) bool {
	cur := int(st.val[b])
	for d := 1; d < Buckets; d++ {
		for _, v := range [2]int{cur - d, cur + d} {
			if v < 0 || v >= Buckets || !accept(st.cat(b, uint16(v))) {
				continue
			}
			b2 := int(st.inv[v])
			from, to := st.cat(b2, uint16(v)), st.cat(b2, uint16(cur))
			if !st.partnerOK(b2, from, to) {
				continue
			}
			st.account(b2, from, -1)
			st.account(b2, to, 1)
			st.account(b, st.cat(b, uint16(cur)), -1)
			st.account(b, st.cat(b, uint16(v)), 1)
			st.val[b], st.val[b2] = uint16(v), uint16(cur)
			st.inv[v], st.inv[cur] = uint16(b), uint16(b2)
			return true
		}
	}
	return false
}

func (st *stage) partnerOK(b2, from, to int) bool {
	if from == to {
		return true
	}
	if st.phase == 3 {
		return false
	}
	y2 := st.owner(b2)
	if (from == 0) != (to == 0) {
		if st.phase != 1 || y2 == st.y {
			return false
		}
		return (from == 0 && st.f[y2] > st.want0[y2]) || (to == 0 && st.f[y2] < st.want0[y2])
	}
	// Between second and further back.
	if st.phase == 1 {
		return true
	}
	if y2 == st.y {
		return false
	}
	return (to == 1 && st.h[y2] < st.want1[y2]) || (from == 1 && st.h[y2] > st.want1[y2])
}
