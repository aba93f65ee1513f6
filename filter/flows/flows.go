// Package flows counts a node's live flows towards the VIPs in the kernel's
// connection tracking table, so a drain knows when the last client has gone.
// It asks the kernel over netlink and lets the kernel filter by conntrack
// mark: only the node's own entries cross into user space, however busy the
// host is.
package flows

import (
	"context"
	"fmt"
	"net/netip"
)

// Count returns how many conntrack entries with mark&mask == mark go to one
// of vips (destination of the original direction) and still carry traffic:
// TCP in state ESTABLISHED, or any UDP entry. IPv4 and IPv6 are both counted.
// The agent passes mark = filter.Mark(self) and mask = 0xffffffff.
//
// Each call opens one netlink connection and closes it; ctx bounds the whole
// call (a cancelled or expired ctx closes the connection and Count returns
// ctx's error). Linux only: elsewhere it always returns an error.
func Count(ctx context.Context, mark, mask uint32, vips []netip.Addr) (int, error) {
	if mark&^mask != 0 {
		return 0, fmt.Errorf("count flows: mark 0x%08x has bits outside mask 0x%08x, so nothing could match (pass the mask of the bits the mark uses)", mark, mask)
	}
	return count(ctx, mark, mask, vips)
}

// Protocol numbers and the one TCP conntrack state Count looks at.
const (
	protoTCP = 6  // IPPROTO_TCP
	protoUDP = 17 // IPPROTO_UDP
	// tcpEstablished is TCP_CONNTRACK_ESTABLISHED of the kernel's enum
	// tcp_conntrack: the states before it are a handshake, those after it a
	// closing flow that carries no more requests.
	tcpEstablished = 3
)

// entry is what Count needs from one conntrack entry.
type entry struct {
	proto    uint8      // layer 4 protocol of the original tuple
	tcpState uint8      // TCP conntrack state; 0 (none) when not TCP or unknown
	dst      netip.Addr // destination of the original direction
}

// live reports whether e is a flow towards one of vips that still carries
// traffic. The lists are a handful of VIPs: a linear scan beats a map.
func live(e entry, vips []netip.Addr) bool {
	switch {
	case e.proto == protoTCP && e.tcpState == tcpEstablished, e.proto == protoUDP:
	default:
		return false
	}
	dst := e.dst.Unmap()
	for _, v := range vips {
		if v.Unmap() == dst {
			return true
		}
	}
	return false
}

// Tuple is the original-direction tuple of one conntrack entry: who opened
// the flow, to which address and port. The kernel engine recomputes each of
// its flows' bucket from it (filter.BucketOf on Src and SrcPort).
type Tuple struct {
	Proto   uint8 // IPPROTO_TCP, IPPROTO_UDP, ...
	Src     netip.Addr
	SrcPort uint16
	Dst     netip.Addr
	DstPort uint16
}

// Tuples returns the original tuples of every conntrack entry with
// mark&mask == mark, in any state (a flow in TIME_WAIT still has packets
// in flight), IPv4 and IPv6. The kernel filters on the mark, so only those
// entries cross into user space. Like Count, each call opens and closes one
// netlink connection and ctx bounds it. Linux only: elsewhere it always
// returns an error.
func Tuples(ctx context.Context, mark, mask uint32) ([]Tuple, error) {
	if mark&^mask != 0 {
		return nil, fmt.Errorf("list flows: mark 0x%08x has bits outside mask 0x%08x, so nothing could match (pass the mask of the bits the mark uses)", mark, mask)
	}
	return tuples(ctx, mark, mask)
}
