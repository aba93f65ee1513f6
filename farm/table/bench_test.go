package table

import (
	"fmt"
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
			Compute(c.ms) // the one-time construction is measured below
			b.ReportAllocs()
			for b.Loop() {
				Compute(c.ms)
			}
		})
	}
}

// BenchmarkConstruction is the one-time cost paid by the first Compute in a
// process that sees ids up to maxID.
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
