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
//
// At run time the construction (construct.go) is not rerun. It is
// sequential (id 250's column depends on the 249 before it: 0.2-0.4 s of CPU,
// most of it balancing), but its result is fixed forever, and the balancing
// changes only ~140 of each column's 4096 base values. columns.bin holds
// those changes (about 100 KB for all ids), so any id's column is rebuilt on
// its own from its base column (a few hashes per bucket) plus its changes:
// tens of microseconds per id, without a global lock, whatever the other ids
// are. columns_test.go checks that every column so obtained equals the one
// the construction builds, and regenerates columns.bin with -update.

import (
	"math/bits"
	"sync"
	"sync/atomic"
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

// xxhash64 primes.
const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

// hash3 is xxhash64 (seed 0) of tag, a and b as 24 little-endian bytes,
// unrolled for that length: a column takes ~8200 of them, and
// xxhash.Sum64 over a byte buffer costs several times more. The tests
// compare it with xxhash.Sum64.
func hash3(tag, a, b uint64) uint64 {
	return hashLast(hashPrefix(tag, a), b)
}

// hashPrefix is hash3's state after tag and a, for runs of hashes that
// share them; hashLast(hashPrefix(tag, a), b) == hash3(tag, a, b).
func hashPrefix(tag, a uint64) uint64 {
	return xxLane(xxLane(prime5+24, tag), a)
}

// hashLast mixes in the last lane and finishes the hash.
func hashLast(h, b uint64) uint64 {
	h = xxLane(h, b)
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

// xxLane mixes one 8-byte lane into h (xxhash64's tail loop).
func xxLane(h, w uint64) uint64 {
	h ^= bits.RotateLeft64(w*prime2, 31) * prime1
	return bits.RotateLeft64(h, 27)*prime1 + prime4
}

// tieKey is the low part of id k's key in bucket b: the 12-bit tie and the id.
func tieKey(b, k int) uint32 {
	return uint32(hash3(tagTie, uint64(b), uint64(k))&tieMask)<<8 | uint32(k)
}

// Compute returns the owner of every bucket for the given members.
//
// Members with an ID outside 1..MaxID are ignored. A duplicated ID counts
// once, with the largest weight given for it, so the result does not depend
// on the order of members. Members with Weight 0 (standby) own buckets only
// when no member has a positive weight; they then share equally. An empty
// set yields a table of zeros (nobody serves).
func Compute(members []Member) *Table {
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
	t := new(Table)
	if n == 0 {
		return t
	}
	// The key of the set: equal weights give the same table whatever
	// their value.
	var key memoKey
	for i, id := range ids[:n] {
		key.in[id] = true
		if !equal {
			key.w[id] = ws[i]
		}
	}
	if m := lastTable.Load(); m != nil && m.key == key {
		*t = m.t
		return t
	}
	if equal {
		computeEqual(t, ids[:n])
	} else {
		computeWeighted(t, ids[:n], ws[:n])
	}
	lastTable.Store(&memo{key: key, t: *t})
	return t
}

// memoKey is a member set after Compute's rules: the ids that count and
// their weights (all 0 when the weights are equal).
type memoKey struct {
	in [MaxID + 1]bool
	w  [MaxID + 1]uint32
}

type memo struct {
	key memoKey
	t   Table
}

// lastTable is the latest computation. Every view change recomputes the
// table, most often for the same set as the previous one (a suspicion, a
// standby's state, the witness, what-if plans), and the nodes of a
// simulation all compute the same sets; a hit costs a compare and a copy
// instead of a pass over every member's column.
var lastTable atomic.Pointer[memo]

// computeEqual fills t for equal weights: the smallest key wins. Four
// columns per pass over best, branch-free.
func computeEqual(t *Table, ids []uint8) {
	var best [Buckets]uint32
	for i := range best {
		best[i] = ^uint32(0)
	}
	i := 0
	for ; i+4 <= len(ids); i += 4 {
		c0, c1, c2, c3 := columnOf(int(ids[i])), columnOf(int(ids[i+1])), columnOf(int(ids[i+2])), columnOf(int(ids[i+3]))
		for b := range best {
			best[b] = min(best[b], c0[b], c1[b], c2[b], c3[b])
		}
	}
	for ; i < len(ids); i++ {
		c := columnOf(int(ids[i]))
		for b := range best {
			best[b] = min(best[b], c[b])
		}
	}
	for b, k := range best {
		t[b] = uint8(k) // the low byte of a key is its id
	}
}

// computeWeighted fills t for unequal weights.
func computeWeighted(t *Table, ids []uint8, ws []uint32) {
	// Weighted: the member with the smallest E/weight wins; E*w products
	// are compared exactly in 128 bits, ties by key.
	exp := expTable()
	var bestK [Buckets]uint32
	var bestE [Buckets]uint64
	var bestW [Buckets]uint32
	copy(bestK[:], columnOf(int(ids[0]))[:])
	for b, k := range bestK {
		bestE[b], bestW[b] = exp[k>>valueShift], ws[0]
	}
	for i := 1; i < len(ids); i++ {
		w := ws[i]
		for b, k := range columnOf(int(ids[i])) {
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
}

// Shares returns how many buckets each owner has; buckets owned by nobody
// (id 0) are not counted. The status output and the balance checks use it.
func (t *Table) Shares() map[uint8]int {
	// Count in an array first: 4096 map increments cost more than the
	// table computation itself, and every view change calls this.
	var c [256]int
	for _, o := range t {
		c[o]++
	}
	n := 0
	for o := 1; o < len(c); o++ {
		if c[o] > 0 {
			n++
		}
	}
	s := make(map[uint8]int, n)
	for o := 1; o < len(c); o++ {
		if c[o] > 0 {
			s[uint8(o)] = c[o]
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
