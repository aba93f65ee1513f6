package table

import (
	"bytes"
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
)

var update = flag.Bool("update", false, "regenerate columns.bin from the construction")

// resetColumns forgets every built column and the last result, as in a
// freshly started process.
func resetColumns() {
	for i := range columns {
		columns[i].Store(nil)
	}
	lastTable.Store(nil)
}

// hash3Reference is the definition hash3 unrolls.
func hash3Reference(tag, a, b uint64) uint64 {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], tag)
	binary.LittleEndian.PutUint64(buf[8:], a)
	binary.LittleEndian.PutUint64(buf[16:], b)
	return xxhash.Sum64(buf[:])
}

func TestHash3(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	check := func(tag, a, b uint64) {
		if got, want := hash3(tag, a, b), hash3Reference(tag, a, b); got != want {
			t.Fatalf("hash3(%d, %d, %d) = %#x, want %#x", tag, a, b, got, want)
		}
	}
	for tag := uint64(0); tag <= tagCeil+1; tag++ {
		for i := range 5000 {
			check(tag, uint64(i), uint64(i>>3))
			check(tag, r.Uint64(), r.Uint64())
		}
	}
	check(^uint64(0), ^uint64(0), ^uint64(0))
}

// baseReference is the base column as first written (one bucket at a time,
// hashing through a byte buffer); baseColumn must give the same values.
func baseReference(k int, val *[Buckets]uint16) {
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
		j := int(hash3Reference(tagPoints, uint64(i), 0) % uint64(i+1))
		pts[i], pts[j] = pts[j], pts[i]
	}
	l := pts[k-1]
	off := uint8(hash3Reference(tagOffset, uint64(k), 0) & 15)
	var sigma [16]uint16
	for i := range sigma {
		sigma[i] = uint16(i)
	}
	for i := 15; i > 0; i-- {
		j := int(hash3Reference(tagSigma, uint64(k), uint64(i)) % uint64(i+1))
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
			j := int(hash3Reference(tagFine, uint64(k), uint64(s)<<16|uint64(i)) % uint64(i+1))
			g[i], g[j] = g[j], g[i]
		}
		for i, b := range g {
			val[b] = uint16(s*len(g) + i)
		}
	}
}

func TestBaseColumn(t *testing.T) {
	for k := 1; k <= MaxID; k++ {
		var got, want [Buckets]uint16
		baseColumn(k, &got)
		baseReference(k, &want)
		if got != want {
			t.Fatalf("id %d: base column differs from the reference", k)
		}
	}
}

// encodeColumns is columns.bin for the given construction (see columnData).
func encodeColumns(bd *builder) []byte {
	out := []byte(columnMagic)
	for k := 1; k <= MaxID; k++ {
		var base [Buckets]uint16
		baseColumn(k, &base)
		var ch []byte
		for b, key := range bd.cols[k] {
			if v := key >> valueShift; v != uint32(base[b]) {
				e := uint32(b) | v<<12
				ch = append(ch, byte(e), byte(e>>8), byte(e>>16))
			}
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(len(ch)/3))
		out = append(out, ch...)
	}
	return out
}

// TestColumnData checks that columns.bin is what the construction gives and
// that every column Compute uses equals the construction's. With -update it
// rewrites columns.bin first: only after a deliberate change of the
// construction, which changes the tables (see TestGolden).
func TestColumnData(t *testing.T) {
	bd := newBuilder()
	bd.growTo(MaxID)
	want := encodeColumns(bd)
	if *update {
		if err := os.WriteFile("columns.bin", want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote columns.bin: %d bytes; rebuild the test binary to embed it", len(want))
		return
	}
	if !bytes.Equal([]byte(columnData), want) {
		t.Fatalf("columns.bin (%d bytes) differs from the construction (%d bytes): go test ./farm/table -run TestColumnData -update", len(columnData), len(want))
	}
	resetColumns()
	for k := 1; k <= MaxID; k++ {
		if *buildColumn(k) != *bd.cols[k] {
			t.Fatalf("column %d built from columns.bin differs from the construction", k)
		}
		if *columnOf(k) != *bd.cols[k] {
			t.Fatalf("cached column %d differs from the construction", k)
		}
	}
	t.Logf("columns.bin: %d bytes, %d changed values", len(want), (len(want)-len(columnMagic)-2*MaxID)/3)
}
