package table

import "math/bits"

// Set is a set of buckets as a bitmap, so a per-packet membership test is one
// shift and one mask. The planner uses it for the buckets whose orphaned flows
// this node resets after taking them over from a dead node; engines read it.
// The zero value is empty. A Set handed to an engine must not be modified.
type Set [Buckets / 64]uint64

// Add puts bucket b in the set (ignored if b >= Buckets).
func (s *Set) Add(b uint16) {
	if int(b) < Buckets {
		s[b/64] |= 1 << (b % 64)
	}
}

// Has reports whether bucket b is in the set; a nil set holds no bucket, so
// a reader without a set needs no special case.
func (s *Set) Has(b uint16) bool {
	return s != nil && int(b) < Buckets && s[b/64]&(1<<(b%64)) != 0
}

// Len returns how many buckets the set holds, for logs and status.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// Union returns a new set with the buckets of a and b (either may be nil).
func Union(a, b *Set) *Set {
	var u Set
	for i := range u {
		if a != nil {
			u[i] |= a[i]
		}
		if b != nil {
			u[i] |= b[i]
		}
	}
	return &u
}
