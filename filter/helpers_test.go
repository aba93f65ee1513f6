package filter

import (
	"encoding/binary"
	"net/netip"
)

// Packet builders for tests: valid headers with just the fields the parser
// reads filled in.

// l4 returns a minimal TCP (SYN) or UDP header with the given ports.
func l4(proto uint8, sport, dport uint16) []byte {
	var h []byte
	switch proto {
	case ProtoTCP:
		h = make([]byte, 20)
		h[12] = 5 << 4 // data offset
		h[13] = 0x02   // SYN
	case ProtoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[4:6], 8)
	default:
		h = make([]byte, 8) // ICMP echo or anything else
	}
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	return h
}

// tcpFlags sets the flags byte of a TCP header made by l4 and returns it.
func tcpFlags(h []byte, flags uint8) []byte {
	h[13] = flags
	return h
}

// ip4 returns an IPv4 packet (IHL 5) carrying payload.
func ip4(src, dst string, proto uint8, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(payload)))
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	return append(h, payload...)
}

// ext6 is one IPv6 extension header for ip6: its type and its length in
// bytes (a multiple of 8, or of 4 for AH).
type ext6 struct {
	kind uint8
	size int
	// fragOffset is the fragment offset in 8-byte units (fragment header).
	fragOffset uint16
}

// ip6 returns an IPv6 packet with the given extension headers, in order,
// followed by a transport header of protocol proto.
func ip6(src, dst string, proto uint8, payload []byte, exts ...ext6) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	prevNext := 6 // where the previous header's next-header byte is
	for _, e := range exts {
		h[prevNext] = e.kind
		start := len(h)
		h = append(h, make([]byte, e.size)...)
		switch e.kind {
		case ipv6AH:
			h[start+1] = byte(e.size/4 - 2)
		case ipv6Fragment:
			binary.BigEndian.PutUint16(h[start+2:start+4], e.fragOffset<<3|1)
		default:
			h[start+1] = byte(e.size/8 - 1)
		}
		prevNext = start
	}
	h[prevNext] = proto
	h = append(h, payload...)
	binary.BigEndian.PutUint16(h[4:6], uint16(len(h)-40))
	return h
}
