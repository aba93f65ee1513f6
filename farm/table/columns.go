package table

import (
	_ "embed"
	"fmt"
	"sync"
	"sync/atomic"
)

// columnData is what the construction's balancing changed in each base
// column (see compute.go), made by construct.go and checked against it by
// columns_test.go. Layout: the 4 bytes "FTC1", then for each id 1..MaxID a
// little-endian uint16 count n followed by n entries of 3 little-endian
// bytes, b | v<<12: bucket b (ascending) holds value v instead of its base
// value.
//
//go:embed columns.bin
var columnData string

const columnMagic = "FTC1"

// columns caches each id's column once built; a column never changes, so
// racing first users may both build it and either copy is kept.
var columns [MaxID + 1]atomic.Pointer[column]

// columnOf returns id k's column (1 <= k <= MaxID).
func columnOf(k int) *column {
	if c := columns[k].Load(); c != nil {
		return c
	}
	c := buildColumn(k)
	if columns[k].CompareAndSwap(nil, c) {
		return c
	}
	return columns[k].Load()
}

func buildColumn(k int) *column {
	var val [Buckets]uint16
	baseColumn(k, &val)
	ch := columnChanges()[k]
	for i := 0; i < len(ch); i += 3 {
		e := uint32(ch[i]) | uint32(ch[i+1])<<8 | uint32(ch[i+2])<<16
		val[e&(Buckets-1)] = uint16(e >> 12)
	}
	col := new(column)
	for b, v := range val {
		col[b] = uint32(v)<<valueShift | tieKey(b, k)
	}
	return col
}

// columnChanges splits columnData by id.
var columnChanges = sync.OnceValue(func() *[MaxID + 1]string {
	var out [MaxID + 1]string
	d := columnData
	if len(d) < len(columnMagic) || d[:len(columnMagic)] != columnMagic {
		panic("table: columns.bin has no FTC1 header (regenerate it: go test ./farm/table -run TestColumnData -update)")
	}
	d = d[len(columnMagic):]
	for k := 1; k <= MaxID; k++ {
		if len(d) < 2 {
			panic(fmt.Sprintf("table: columns.bin ends at id %d (regenerate it: go test ./farm/table -run TestColumnData -update)", k))
		}
		n := 3 * (int(d[0]) | int(d[1])<<8)
		if len(d) < 2+n {
			panic(fmt.Sprintf("table: columns.bin ends inside id %d (regenerate it: go test ./farm/table -run TestColumnData -update)", k))
		}
		out[k], d = d[2:2+n], d[2+n:]
	}
	if len(d) != 0 {
		panic("table: columns.bin has trailing bytes (regenerate it: go test ./farm/table -run TestColumnData -update)")
	}
	return &out
})

// point is a GF(16) linear functional on GF(16)^3 (a point of PG(2,16)).
type point [3]uint8

// pgPoints are the 273 normalized points of PG(2,16) in a fixed hashed
// order; id x gets pgPoints()[x-1].
var pgPoints = sync.OnceValue(func() *[273]point {
	var pts [273]point
	n := 0
	for a := 0; a < 16; a++ {
		for b := 0; b < 16; b++ {
			for c := 0; c < 16; c++ {
				p := point{uint8(a), uint8(b), uint8(c)}
				i := 0
				for i < 3 && p[i] == 0 {
					i++
				}
				if i < 3 && p[i] == 1 {
					pts[n] = p
					n++
				}
			}
		}
	}
	for i := len(pts) - 1; i > 0; i-- {
		j := int(hash3(tagPoints, uint64(i), 0) % uint64(i+1))
		pts[i], pts[j] = pts[j], pts[i]
	}
	return &pts
})

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

// baseColumn fills val with id k's orthogonal-array column: a permutation
// of 0..Buckets-1. Bucket b is the point (b>>8, b>>4&15, b&15) of GF(16)^3.
func baseColumn(k int, val *[Buckets]uint16) {
	l := pgPoints()[k-1]
	off := uint8(hash3(tagOffset, uint64(k), 0) & 15)
	var sigma [16]uint8
	for i := range sigma {
		sigma[i] = uint8(i)
	}
	for i := 15; i > 0; i-- {
		j := int(hash3(tagSigma, uint64(k), uint64(i)) % uint64(i+1))
		sigma[i], sigma[j] = sigma[j], sigma[i]
	}
	// The linear form nibble by nibble: l.p = l0*p0 ^ l1*p1 ^ l2*p2.
	var mul [3][16]uint8
	for j := range mul {
		for x := range mul[j] {
			mul[j][x] = gfMul(l[j], uint8(x))
		}
	}
	const per = Buckets / 16
	var level [16][per]uint16
	var fill [16]uint16
	b := uint16(0)
	for x0 := range 16 {
		v0 := mul[0][x0] ^ off
		for x1 := range 16 {
			v1 := v0 ^ mul[1][x1]
			for x2 := range 16 {
				s := sigma[v1^mul[2][x2]]
				level[s][fill[s]&(per-1)] = b
				fill[s]++
				b++
			}
		}
	}
	fine := hashPrefix(tagFine, uint64(k))
	for s := range level {
		g := &level[s]
		for i := per - 1; i > 0; i-- {
			j := hashLast(fine, uint64(s)<<16|uint64(i)) % uint64(i+1)
			g[i], g[j] = g[j], g[i]
		}
		for i, b := range g {
			val[b] = uint16(s*per + i)
		}
	}
}
