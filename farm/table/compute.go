package table

// How the table is computed.
//
// Exact minimal movement (removing a node moves only that node's buckets)
// for a pure function of the member set forces every bucket to carry a fixed
// total order over node ids: the owner is the first member of the set in that
// bucket's order (rendezvous hashing). The design is therefore about choosing
// 4096 orders over ids 1..250 that are balanced for as many subsets as
// possible.
//
// Each id x has a column of keys, one per bucket; a bucket's order is the
// order of the keys. A key is value<<20 | tie<<8 | x, where the 12-bit values
// of a column are a permutation of 0..4095: every id is exactly uniform over
// the value range (stratified rendezvous hashing), which removes about half
// of plain HRW's variance for every subset. The 12-bit tie is a fixed hash
// and the id makes keys unique.
//
// The base column of id x comes from an orthogonal array: buckets are the
// points p of GF(16)^3 (three nibbles), id x gets a distinct point l_x of the
// projective plane PG(2,16) (273 exist) read as a linear form, and its coarse
// value level is sigma_x(l_x.p + c_x). Any two ids are thus exactly uniform
// against each other on a 16x16 grid of levels, and three ids whose forms are
// independent on a 16x16x16 grid, so small sets of arbitrary ids come out
// well balanced. The fine value inside a level is a hashed shuffle.
//
// Columns are built in increasing id order, each depending only on the
// columns before it, so the construction for ids 1..m is a prefix of the one
// for 1..m' and a result never depends on what was computed before. When
// column k is added, values are swapped between its buckets (it stays a
// permutation), nearest values first, until for the prefix set {1..k}:
//   - every id owns floor or ceil of 4096/k buckets, exactly;
//   - the new id is second in 1/(k-1) of each owner's buckets and each
//     owner's (first, second) pairs are spread evenly, so that when one node
//     of {1..n} leaves, its buckets spread evenly over the others (soft).
//
// Weights use the same keys: the value v is read as the exponential variate
// E = -ln(1 - (v+0.5)/4096) and the member with the smallest E/weight wins
// (weighted rendezvous), ties by key. With equal weights this is exactly the
// key order. E is computed in integer arithmetic and compared by exact
// 128-bit cross products, and the construction uses integers only, so every
// platform computes the same bits.
//
// compute_test.go states and checks what this achieves.

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// column holds one id's key for every bucket.
type column [Buckets]uint32

const (
	valueShift = 20 // key = value<<valueShift | tie<<8 | id
	tieMask    = 0xfff
)

// Hash domain tags: fixed forever, every node must use the same ones.
const (
	tagPoints = iota + 1
	tagOffset
	tagSigma
	tagFine
	tagTie
	tagCeil
)

func hash3(tag, a, b uint64) uint64 {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], tag)
	binary.LittleEndian.PutUint64(buf[8:], a)
	binary.LittleEndian.PutUint64(buf[16:], b)
	return xxhash.Sum64(buf[:])
}

// Compute returns the owner of every bucket for the given members.
//
// Members with an ID outside 1..MaxID are ignored. A duplicated ID counts
// once, with the largest weight given for it, so the result does not depend
// on the order of members. Members with Weight 0 (standby) own buckets only
// when no member has a positive weight; they then share equally. An empty
// set yields a table of zeros (nobody serves).
func Compute(members []Member) *Table {
	t := new(Table)
	var weight [MaxID + 1]uint32
	var present [MaxID + 1]bool
	anyPositive := false
	for _, m := range members {
		if m.ID == 0 || m.ID > MaxID {
			continue
		}
		if !present[m.ID] || m.Weight > weight[m.ID] {
			weight[m.ID] = m.Weight
		}
		present[m.ID] = true
		if m.Weight > 0 {
			anyPositive = true
		}
	}
	var ids [MaxID]uint8
	var ws [MaxID]uint32
	n := 0
	equal := true
	for id := 1; id <= MaxID; id++ {
		if !present[id] || (anyPositive && weight[id] == 0) {
			continue
		}
		ids[n], ws[n] = uint8(id), weight[id]
		if ws[n] != ws[0] {
			equal = false
		}
		n++
	}
	if n == 0 {
		return t
	}
	cols := columnsUpTo(int(ids[n-1]))
	if equal {
		var best [Buckets]uint32
		for i := range best {
			best[i] = ^uint32(0)
		}
		for _, id := range ids[:n] {
			col := cols[id]
			for b, k := range col {
				if k < best[b] {
					best[b] = k
				}
			}
		}
		for b, k := range best {
			t[b] = uint8(k) // the low byte of a key is its id
		}
		return t
	}
	// Weighted: the member with the smallest E/weight wins; E*w products
	// are compared exactly in 128 bits, ties by key.
	exp := expTable()
	var bestK [Buckets]uint32
	var bestE [Buckets]uint64
	var bestW [Buckets]uint32
	copy(bestK[:], cols[ids[0]][:])
	for b, k := range bestK {
		bestE[b], bestW[b] = exp[k>>valueShift], ws[0]
	}
	for i := 1; i < n; i++ {
		w := ws[i]
		for b, k := range cols[ids[i]] {
			e := exp[k>>valueShift]
			h1, l1 := bits.Mul64(e, uint64(bestW[b]))
			h2, l2 := bits.Mul64(bestE[b], uint64(w))
			if h1 < h2 || (h1 == h2 && (l1 < l2 || (l1 == l2 && k < bestK[b]))) {
				bestK[b], bestE[b], bestW[b] = k, e, w
			}
		}
	}
	for b, k := range bestK {
		t[b] = uint8(k)
	}
	return t
}

// Shares returns how many buckets each owner has; buckets owned by nobody
// (id 0) are not counted. The status output and the balance checks use it.
func (t *Table) Shares() map[uint8]int {
	s := make(map[uint8]int)
	for _, o := range t {
		if o != 0 {
			s[o]++
		}
	}
	return s
}

// Diff returns the number of buckets whose owner differs between a and b:
// the amount of traffic a membership change moves. A nil table counts as
// all zeros.
func Diff(a, b *Table) int {
	var zero Table
	if a == nil {
		a = &zero
	}
	if b == nil {
		b = &zero
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// The construction is cached process-wide and extended lazily up to the
// largest id seen. Published columns are never modified again, so readers
// use them without holding the lock.
var cache struct {
	mu sync.Mutex
	b  *builder
}

func columnsUpTo(maxID int) []*column {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.b == nil {
		cache.b = newBuilder()
	}
	cache.b.growTo(maxID)
	return cache.b.cols[:maxID+1]
}

// expTable[v] = -ln(1 - (v+0.5)/Buckets) * 2^58: the key value v read as an
// exponential variate. (Interpolating inside a cell with the tie bits was
// tried; it did not change any measured share.)
var expTable = sync.OnceValue(func() *[Buckets]uint64 {
	t := new([Buckets]uint64)
	ln8192 := lnFixed58(2 * Buckets)
	for v := range t {
		t[v] = ln8192 - lnFixed58(uint64(2*Buckets-1-2*v))
	}
	return t
})

// lnFixed58 returns ln(m)*2^58 for 1 <= m <= 2^14, in integer arithmetic so
// that every platform gets the same bits.
func lnFixed58(m uint64) uint64 {
	e := uint64(bits.Len64(m) - 1)
	ln2 := atanh2Fixed62(1, 3) // ln 2 = 2 atanh(1/3)
	// m = 2^e * r, ln r = 2 atanh((m-2^e)/(m+2^e))
	lnr := atanh2Fixed62(m-1<<e, m+1<<e)
	return e*(ln2>>4) + lnr>>4
}

// atanh2Fixed62 returns 2*atanh(num/den)*2^62 for 0 <= num/den <= 1/3.
func atanh2Fixed62(num, den uint64) uint64 {
	mul := func(a, b uint64) uint64 {
		hi, lo := bits.Mul64(a, b)
		return hi<<2 | lo>>62
	}
	t, _ := bits.Div64(num>>2, num<<62, den)
	t2 := mul(t, t)
	sum, term := t, t
	for i := uint64(1); ; i++ {
		term = mul(term, t2)
		if term == 0 {
			break
		}
		sum += term / (2*i + 1)
	}
	return 2 * sum
}

// builder holds the construction state for the prefix of ids built so far.
type builder struct {
	cols   []*column // cols[x] for x = 1..built; cols[0] is nil
	first  column    // per bucket, the smallest key among built ids
	second column    // and the second smallest (^0 if none)
	count  [MaxID + 1]int
	pair   []int32 // (first, second) owner counts, index y*(MaxID+1)+z
	points [MaxID]point
}

// point is a GF(16) linear functional on GF(16)^3 (a point of PG(2,16)).
type point [3]uint8

func newBuilder() *builder {
	bd := &builder{cols: make([]*column, 1, MaxID+1), pair: make([]int32, (MaxID+1)*(MaxID+1))}
	for b := range bd.first {
		bd.first[b], bd.second[b] = ^uint32(0), ^uint32(0)
	}
	// The 273 normalized points of PG(2,16) in a fixed hashed order.
	var pts []point
	for a := 0; a < 16; a++ {
		for b := 0; b < 16; b++ {
			for c := 0; c < 16; c++ {
				p := point{uint8(a), uint8(b), uint8(c)}
				i := 0
				for i < 3 && p[i] == 0 {
					i++
				}
				if i < 3 && p[i] == 1 {
					pts = append(pts, p)
				}
			}
		}
	}
	for i := len(pts) - 1; i > 0; i-- {
		j := int(hash3(tagPoints, uint64(i), 0) % uint64(i+1))
		pts[i], pts[j] = pts[j], pts[i]
	}
	copy(bd.points[:], pts)
	return bd
}

func (bd *builder) growTo(maxID int) {
	for len(bd.cols) <= maxID {
		bd.add()
	}
}

func gfMul(a, b uint8) uint8 {
	var r uint8
	for b != 0 {
		if b&1 != 0 {
			r ^= a
		}
		b >>= 1
		a <<= 1
		if a&0x10 != 0 {
			a ^= 0x13 // x^4 + x + 1
		}
	}
	return r
}

// base fills val with id k's orthogonal-array column: a permutation of
// 0..Buckets-1.
func (bd *builder) base(k int, val *[Buckets]uint16) {
	l := bd.points[k-1]
	off := uint8(hash3(tagOffset, uint64(k), 0) & 15)
	var sigma [16]uint16
	for i := range sigma {
		sigma[i] = uint16(i)
	}
	for i := 15; i > 0; i-- {
		j := int(hash3(tagSigma, uint64(k), uint64(i)) % uint64(i+1))
		sigma[i], sigma[j] = sigma[j], sigma[i]
	}
	var level [16][Buckets / 16]uint16
	var fill [16]int
	for b := 0; b < Buckets; b++ {
		v := gfMul(l[0], uint8(b>>8)&15) ^ gfMul(l[1], uint8(b>>4)&15) ^ gfMul(l[2], uint8(b)&15) ^ off
		s := sigma[v]
		level[s][fill[s]] = uint16(b)
		fill[s]++
	}
	for s := range level {
		g := &level[s]
		for i := len(g) - 1; i > 0; i-- {
			j := int(hash3(tagFine, uint64(k), uint64(s)<<16|uint64(i)) % uint64(i+1))
			g[i], g[j] = g[j], g[i]
		}
		for i, b := range g {
			val[b] = uint16(s*len(g) + i)
		}
	}
}

func (bd *builder) add() {
	k := len(bd.cols)
	st := &stage{bd: bd, k: k}
	bd.base(k, &st.val)
	for b := range st.tie {
		st.tie[b] = uint32(hash3(tagTie, uint64(b), uint64(k))&tieMask)<<8 | uint32(k)
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
