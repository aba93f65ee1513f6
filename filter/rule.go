package filter

import "fmt"

// IP protocol numbers of the traffic a farm balances.
const (
	// ProtoTCP is the IP protocol number of TCP.
	ProtoTCP uint8 = 6
	// ProtoUDP is the IP protocol number of UDP.
	ProtoUDP uint8 = 17
)

// ParseProto reads a config protocol word ("tcp" or "udp"; exact, lower
// case). It is the config's parser: its error names the accepted words and
// leaves naming the key to the caller.
func ParseProto(s string) (uint8, error) {
	switch s {
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	}
	return 0, fmt.Errorf("%q is not tcp or udp", s)
}

// ProtoName returns "tcp", "udp" or the number, for logs and rule text.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", p)
}

// Rule says which traffic to the VIP is balanced and how clients are keyed.
// Traffic that no rule covers is not balanced at all (see package rules).
type Rule struct {
	// Proto is ProtoTCP (6) or ProtoUDP (17).
	Proto uint8
	// Ports are the destination ports balanced; nil matches nothing.
	Ports *PortSet
	// Affinity picks the client key hashed into a bucket.
	Affinity Affinity
}

// Connection marks. A node accepts a new flow with the packet mark
// Mark(self); a kernel rule copies it into the conntrack mark, and every
// later packet of the flow is accepted (mark is ours) or dropped (mark is
// another node's) in the kernel without asking user space again. The mark
// carries the node's stable id, never an index into the member list, so
// flows keep their owner when membership changes.
const (
	// MarkBase tags a mark as the farm's; the low byte is the node id.
	MarkBase uint32 = 0x0fa00000
	// MarkMask selects the tag part of a mark: mark&MarkMask == MarkBase
	// means "some farm node owns this flow".
	MarkMask uint32 = 0xffffff00
)

// Mark returns the packet/conntrack mark of node id's flows.
func Mark(id uint8) uint32 { return MarkBase | uint32(id) }
