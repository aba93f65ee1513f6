package filter

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Packet is what a decision needs from a queued packet (the first packet of
// a flow, or during a takeover window a packet of a flow this node has no
// state for), as read from its IP and transport headers. It holds no
// reference to the input.
type Packet struct {
	// Src and Dst are the IP addresses (IPv4 as 4-byte addresses).
	Src, Dst netip.Addr
	// Proto is the transport protocol: for IPv6, the one after the
	// extension headers.
	Proto uint8
	// SrcPort and DstPort are set for TCP and UDP when the transport header
	// is present; zero otherwise.
	SrcPort, DstPort uint16
	// TCPFlags is the TCP header's flags byte (TCPSyn, TCPAck, ...), so
	// that a decision can tell a flow's first packet (a bare SYN) from a
	// packet of a flow this node has no state for; zero for other
	// protocols.
	TCPFlags uint8
	// Fragment is true for a non-first fragment, which carries no transport
	// header and so no ports. (Conntrack reassembles before our hooks, so
	// these should never be queued; the parser still must not guess.)
	Fragment bool
}

// TCP flag bits of Packet.TCPFlags (RFC 9293).
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPAck uint8 = 0x10
)

// tcpFlagsOff is the offset of the flags byte in the TCP header; a TCP
// header shorter than tcpFlagsOff+1 bytes is truncated.
const tcpFlagsOff = 13

// IsSYN reports whether p is a bare TCP SYN (SYN set; ACK, FIN and RST
// clear), the only packet that may open a TCP flow. The kernel rules use
// the same test (nft `tcp flags & (syn|ack|fin|rst) == syn`, iptables
// `--syn`), so the engine and the rules agree on what a first packet is.
func (p Packet) IsSYN() bool {
	return p.Proto == ProtoTCP && p.TCPFlags&(TCPSyn|TCPAck|TCPFin|TCPRst) == TCPSyn
}

// Parse errors. They are fixed values so that the per-packet path never
// allocates to report one.
var (
	// ErrTruncated means the packet ends before a header the decision needs.
	ErrTruncated = errors.New("packet truncated")
	// ErrNotIP means the version nibble is neither 4 nor 6.
	ErrNotIP = errors.New("not an IPv4 or IPv6 packet")
	// ErrBadHeader means a header field is impossible (IHL < 5, total
	// length shorter than the header).
	ErrBadHeader = errors.New("malformed IP header")
	// ErrTooManyHeaders means an IPv6 packet has more extension headers than
	// MaxExtHeaders: a walk must be bounded, and real traffic has few.
	ErrTooManyHeaders = errors.New("too many IPv6 extension headers")
)

// MaxExtHeaders bounds the IPv6 extension-header walk.
const MaxExtHeaders = 8

// IPv6 extension headers the parser walks (IANA protocol numbers).
const (
	ipv6HopByHop  = 0
	ipv6Routing   = 43
	ipv6Fragment  = 44
	ipv6AH        = 51
	ipv6DestOpts  = 60
	ipv6Mobility  = 135
	ipv6HIP       = 139
	ipv6Shim6     = 140
	ipv4HeaderMin = 20
	ipv6HeaderLen = 40
)

// ParsePacket reads a raw IP packet as NFQUEUE delivers it: starting at the
// IP header, possibly cut short by the queue's copy range. It never panics
// and never allocates; a packet it cannot read yields one of the Err values.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 1 {
		return Packet{}, ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b)
	case 6:
		return parseIPv6(b)
	}
	return Packet{}, ErrNotIP
}

func parseIPv4(b []byte) (Packet, error) {
	var p Packet
	if len(b) < ipv4HeaderMin {
		return p, ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderMin {
		return p, ErrBadHeader
	}
	if len(b) < ihl {
		return p, ErrTruncated
	}
	// Total length 0 happens for offloaded packets: trust the buffer then.
	// A longer total length is the normal case of a copy range cut short.
	if total := int(binary.BigEndian.Uint16(b[2:4])); total != 0 {
		if total < ihl {
			return p, ErrBadHeader
		}
		if total < len(b) {
			b = b[:total] // link-layer padding is not payload
		}
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.Proto = b[9]
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		p.Fragment = true
		return p, nil
	}
	return p, parsePorts(&p, b[ihl:])
}

func parseIPv6(b []byte) (Packet, error) {
	var p Packet
	if len(b) < ipv6HeaderLen {
		return p, ErrTruncated
	}
	// Payload length 0 is a jumbogram (or offload): trust the buffer then.
	if plen := int(binary.BigEndian.Uint16(b[4:6])); plen != 0 && ipv6HeaderLen+plen < len(b) {
		b = b[:ipv6HeaderLen+plen]
	}
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	off := ipv6HeaderLen
	for n := 0; ; n++ {
		var hlen int
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Mobility, ipv6HIP, ipv6Shim6:
			if len(b) < off+2 {
				return p, ErrTruncated
			}
			hlen = (int(b[off+1]) + 1) * 8
		case ipv6AH:
			if len(b) < off+2 {
				return p, ErrTruncated
			}
			hlen = (int(b[off+1]) + 2) * 4
		case ipv6Fragment:
			if len(b) < off+8 {
				return p, ErrTruncated
			}
			hlen = 8
			if binary.BigEndian.Uint16(b[off+2:off+4])>>3 != 0 {
				p.Proto = b[off]
				p.Fragment = true
				return p, nil
			}
		default:
			p.Proto = next
			if off > len(b) { // the last extension header ran past the end
				return p, ErrTruncated
			}
			return p, parsePorts(&p, b[off:])
		}
		if n >= MaxExtHeaders {
			return p, ErrTooManyHeaders
		}
		next = b[off]
		off += hlen
	}
}

// parsePorts fills the ports of TCP and UDP, and the flags of TCP; other
// protocols have none. A TCP header must reach its flags byte.
func parsePorts(p *Packet, l4 []byte) error {
	switch p.Proto {
	case ProtoTCP:
		if len(l4) <= tcpFlagsOff {
			return ErrTruncated
		}
		p.TCPFlags = l4[tcpFlagsOff]
	case ProtoUDP:
		if len(l4) < 4 {
			return ErrTruncated
		}
	default:
		return nil
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	return nil
}
