package table

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkCompute(b *testing.B) {
	weighted := func(n int) []Member {
		ms := members(prefix(n), 100)
		for i := range ms {
			ms[i].Weight = uint32(100 + 50*(i%3))
		}
		return ms
	}
	cases := []struct {
		name string
		ms   []Member
	}{
		{"3", members(prefix(3), 100)},
		{"32", members(prefix(32), 100)},
		{"32-sparse-ids", members([]int{7, 13, 21, 34, 40, 55, 61, 70, 89, 93, 101, 110, 123, 131, 144, 150, 161, 170, 181, 190, 199, 205, 212, 220, 226, 233, 237, 240, 243, 246, 248, 250}, 100)},
		{"3-weighted", weighted(3)},
		{"32-weighted", weighted(32)},
		{"250", members(prefix(250), 100)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			Compute(c.ms) // the columns are measured below
			b.ReportAllocs()
			for b.Loop() {
				lastTable.Store(nil) // measure the computation, not the reuse
				Compute(c.ms)
			}
		})
	}
	// The same set again, as most view changes compute.
	b.Run("32-again", func(b *testing.B) {
		ms := members(prefix(32), 100)
		Compute(ms)
		b.ReportAllocs()
		for b.Loop() {
			Compute(ms)
		}
	})
}

// BenchmarkCompute64Spread computes tables for 64 nodes with random ids
// spread over 1..MaxID (a fixed sample of sets). cold starts each
// computation as a fresh process does, with no column built yet; warm reuses
// the columns already built, as every later computation does.
func BenchmarkCompute64Spread(b *testing.B) {
	r := rand.New(rand.NewPCG(64, 250))
	sets := make([][]Member, 16)
	for i := range sets {
		sets[i] = members(randomIDs(r, 64), 100)
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			resetColumns()
			Compute(sets[i%len(sets)])
		}
		resetColumns()
	})
	b.Run("warm", func(b *testing.B) {
		for _, ms := range sets {
			Compute(ms)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			lastTable.Store(nil)
			Compute(sets[i%len(sets)])
		}
	})
}

// BenchmarkColumn is the cost of one id's column from columns.bin: what
// the first computation that includes that id pays once.
func BenchmarkColumn(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buildColumn(1 + i%MaxID)
	}
}

// BenchmarkConstruction is the construction that columns.bin caches: paid
// by the tests and by regenerating columns.bin, never by the agent (before
// columns.bin, by the first Compute in a process that saw ids up to maxID).
func BenchmarkConstruction(b *testing.B) {
	for _, maxID := range []int{3, 32, MaxID} {
		b.Run(fmt.Sprint("up-to-", maxID), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newBuilder().growTo(maxID)
			}
		})
	}
}

// BenchmarkShares is the share count every view change makes.
func BenchmarkShares(b *testing.B) {
	r := rand.New(rand.NewPCG(64, 250))
	t := Compute(members(randomIDs(r, 64), 100))
	b.ReportAllocs()
	for b.Loop() {
		t.Shares()
	}
}
