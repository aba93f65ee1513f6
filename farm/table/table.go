// Package table computes which node owns each of the farm's buckets. It is pure:
// every node computes the same table from the same member list, with no
// coordination, so the function must be deterministic and depend on nothing
// but its input.
package table

// Buckets is the number of buckets client keys hash into. Thousands (not 256)
// so that shares stay balanced for dozens of nodes.
const Buckets = 4096

// MaxID is the largest node id; ids tag flows in conntrack marks.
const MaxID = 250

// Member is one node that may own buckets.
type Member struct {
	// ID is the node's stable id, 1..MaxID.
	ID uint8
	// Weight is the node's share relative to the others; 0 = standby.
	Weight uint32
}

// Table maps each bucket to the id of its owner; 0 means nobody serves it.
type Table [Buckets]uint8

// Compute returns the owner table for the given members (the nodes in state
// up). Order of members does not matter. Implemented in compute.go.
// func Compute(members []Member) *Table
