package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Differential fuzzing of ParsePacket against gopacket's layer decoders
// (github.com/google/gopacket/layers), an independent reading of the same
// RFCs. For every input ParsePacket accepts, gopacket must find the same
// addresses, protocol (after the IPv6 extension headers), ports and TCP
// flags, and agree on whether the packet is a later fragment.
//
// Intentional differences, all about bytes ParsePacket does not need:
//
//   - ParsePacket reads only what a decision needs: a TCP header up to its
//     flags byte (14 bytes), a UDP header up to its ports (4 bytes), the
//     length of an extension header but not its options. gopacket wants whole
//     headers (TCP 20 bytes and its data offset, UDP 8 bytes and a length
//     of 0 or >= 8, AH 12 bytes) and well-formed IPv4, TCP and IPv6 TLV
//     options; it refuses a packet NFQUEUE may hand over cut by its copy
//     range.
//   - An IPv6 payload length of 0: ParsePacket trusts the buffer (offload,
//     or really no payload: next header 59 alone); gopacket requires a
//     hop-by-hop jumbogram option.
//   - gopacket decodes IPv6 routing headers of type 0 only, and does not know
//     the Mobility (135), HIP (139) and Shim6 (140) extension headers, which
//     ParsePacket walks like any other (RFC 7045: they share the generic
//     layout).
//   - A first fragment (offset 0, more-fragments set): gopacket stops at it
//     (it wants reassembly); ParsePacket reads its ports, which the first
//     fragment carries. The reference below goes on with gopacket's own
//     decoder of the fragment's payload.
//   - gopacket v1.1.19 reads two bytes for every IPv6 TLV option, Pad1
//     (one byte) included, so it refuses an options header whose last byte
//     is the packet's last.
//   - gopacket v1.1.19 keeps hop-by-hop-length bytes past the IPv6 payload
//     length after a hop-by-hop header (it cuts at the payload length from
//     the end of that header, not of the fixed header), so it may read
//     link-layer padding as payload; ParsePacket cuts at the payload length.
//   - An AH whose payload length byte is 0 (8 bytes, shorter than AH's
//     12-byte fixed part): the kernel's ipv6_skip_exthdr skips 8 bytes, and
//     so does ParsePacket; gopacket v1.1.19 fails on it (a slice-bounds
//     panic it recovers from).
//   - ParsePacket refuses more than MaxExtHeaders extension headers
//     (ErrTooManyHeaders); gopacket has no bound.
//
// So when gopacket refuses the input, or reads an extension header it does
// not know as the transport, the input is normalized: the bytes ParsePacket
// does not read are made well-formed (options become padding, unknown
// extension headers become destination options of the same length, short
// transport headers are padded, lengths are made explicit). ParsePacket
// must read the normalized input exactly as the original, and gopacket must
// then agree with it. Conversely, whatever gopacket reads (cut at the
// declared length) ParsePacket reads too, unless it has too many extension
// headers.
func FuzzParsePacketGopacket(f *testing.F) {
	hbh := ext6{kind: ipv6HopByHop, size: 8}
	rt := ext6{kind: ipv6Routing, size: 24}
	dst := ext6{kind: ipv6DestOpts, size: 16}
	ah := ext6{kind: ipv6AH, size: 16}
	frag := ext6{kind: ipv6Fragment, size: 8}
	v4tcp := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 80))
	withV4Options := func(opts ...byte) []byte { // IHL 5 + len(opts)/4
		p := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, append(append([]byte{}, opts...), l4(ProtoTCP, 40000, 80)...))
		p[0] = 0x45 + byte(len(opts)/4)
		return p
	}
	v4frag := func(v uint16) []byte {
		p := append([]byte(nil), v4tcp...)
		binary.BigEndian.PutUint16(p[6:8], v)
		return p
	}
	withPlen := func(p []byte, n uint16) []byte {
		p = append([]byte(nil), p...)
		binary.BigEndian.PutUint16(p[4:6], n)
		return p
	}
	v6 := func(proto uint8, payload []byte, exts ...ext6) []byte {
		return ip6("2001:db8::1", "2001:db8::100", proto, payload, exts...)
	}
	seeds := [][]byte{
		v4tcp,
		ip4("198.51.100.7", "10.0.0.100", ProtoUDP, l4(ProtoUDP, 1234, 53)),
		ip4("192.0.2.1", "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), TCPAck|TCPFin)),
		ip4("192.0.2.1", "10.0.0.100", 1, l4(1, 0x0800, 0)),
		withV4Options(1, 1, 1, 0),    // NOPs, end of list
		withV4Options(0x94, 4, 0, 0), // router alert
		withV4Options(0x07, 0, 0, 0), // malformed: gopacket refuses
		v4frag(0x2000),               // first fragment
		v4frag(185),                  // later fragment
		append(append([]byte(nil), v4tcp...), 0, 0, 0, 0, 0, 0), // link padding
		v4tcp[:34],              // cut after the flags
		withPlen(v4tcp[:34], 0), // total length 0 is not an IPv6 field: same bytes at [4:6]
		v6(ProtoTCP, l4(ProtoTCP, 40000, 443)),
		v6(ProtoUDP, l4(ProtoUDP, 5000, 53)),
		v6(ProtoTCP, l4(ProtoTCP, 1, 2), hbh, rt, dst, ah),
		v6(ProtoUDP, l4(ProtoUDP, 7, 8), hbh, frag),
		v6(ProtoUDP, l4(ProtoUDP, 7, 8), ext6{kind: ipv6Fragment, size: 8, fragOffset: 100}),
		v6(ProtoTCP, l4(ProtoTCP, 1, 2), ext6{kind: ipv6Mobility, size: 8}, ext6{kind: ipv6HIP, size: 16}, ext6{kind: ipv6Shim6, size: 8}),
		v6(58, l4(58, 0x8700, 0)),
		v6(59, nil),
		v6(50, l4(50, 1, 2)),
		withPlen(v6(ProtoTCP, l4(ProtoTCP, 40000, 443)), 0), // offload
		v6(ProtoTCP, l4(ProtoTCP, 40000, 443))[:54],         // cut after the flags
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0xffff {
			return // no IP packet is longer; gopacket's IPv4 length would wrap
		}
		p, err := ParsePacket(b)
		if err != nil {
			checkRefusal(t, b, err)
			return
		}
		g, gerr := gopacketParse(b)
		if gerr == nil && g == p {
			return
		}
		n, unknownExt := normalize(t, b, p)
		if gerr == nil && !unknownExt {
			t.Fatalf("gopacket reads %x as\n%+v\nParsePacket as\n%+v", b, g, p)
		}
		if pn, err := ParsePacket(n); err != nil || pn != p {
			t.Fatalf("normalizing %x to %x changed ParsePacket's reading: %+v, %v; was %+v", b, n, pn, err, p)
		}
		g2, gerr2 := gopacketParse(n)
		if gerr2 != nil || g2 != p {
			t.Fatalf("gopacket reads %x (normalized from %x) as\n%+v, %v\nParsePacket as\n%+v\n(original: %+v, %v)", n, b, g2, gerr2, p, g, gerr)
		}
	})
}

// checkRefusal checks that an input ParsePacket refuses is one gopacket
// refuses too (or one with too many extension headers), once both read it
// cut at its declared length.
func checkRefusal(t *testing.T, b []byte, err error) {
	t.Helper()
	if errors.Is(err, ErrTooManyHeaders) || len(b) == 0 {
		return
	}
	c := cutAtLength(b)
	if _, err := ParsePacket(c); err == nil {
		t.Fatalf("ParsePacket refuses %x but reads it cut at its length (%x)", b, c)
	}
	if g, gerr := gopacketParse(c); gerr == nil && !unknownToGopacket(g.Proto) {
		t.Fatalf("ParsePacket refuses %x (%v), gopacket reads it as %+v", c, err, g)
	}
}

// unknownToGopacket reports an IPv6 extension header gopacket reads as a
// transport protocol: ParsePacket walks past it, so it may refuse what
// comes next.
func unknownToGopacket(proto uint8) bool {
	return proto == ipv6Mobility || proto == ipv6HIP || proto == ipv6Shim6
}

// cutAtLength returns b without the bytes past its IP total (IPv4) or
// payload (IPv6) length, as ParsePacket reads it.
func cutAtLength(b []byte) []byte {
	switch b[0] >> 4 {
	case 4:
		if len(b) >= ipv4HeaderMin {
			if n := int(binary.BigEndian.Uint16(b[2:4])); n != 0 && n < len(b) {
				return b[:n]
			}
		}
	case 6:
		if len(b) >= ipv6HeaderLen {
			if n := int(binary.BigEndian.Uint16(b[4:6])); n != 0 && ipv6HeaderLen+n < len(b) {
				return b[:ipv6HeaderLen+n]
			}
		}
	}
	return b
}

// gopacketParse reads b the way ParsePacket does, with gopacket's decoder
// for every header: gopacket finds each header's length, its next header
// and its fields. Only the walk (which headers are extension headers, to go
// on past a first fragment) is ours.
func gopacketParse(b []byte) (Packet, error) {
	var p Packet
	df := gopacket.NilDecodeFeedback
	var next layers.IPProtocol
	var rest []byte
	switch b[0] >> 4 {
	case 4:
		var ip layers.IPv4
		if err := ip.DecodeFromBytes(b, df); err != nil {
			return p, fmt.Errorf("ipv4: %w", err)
		}
		p.Src, p.Dst = addr(ip.SrcIP), addr(ip.DstIP)
		p.Proto = uint8(ip.Protocol)
		if ip.FragOffset != 0 {
			p.Fragment = true
			return p, nil
		}
		return p, gopacketPorts(&p, ip.Payload)
	case 6:
		var ip layers.IPv6
		if err := ip.DecodeFromBytes(b, df); err != nil {
			return p, fmt.Errorf("ipv6: %w", err)
		}
		p.Src, p.Dst = addr(ip.SrcIP), addr(ip.DstIP)
		next, rest = ip.NextHeader, ip.Payload
		if ip.HopByHop != nil { // decoded as part of the IPv6 layer
			next = ip.HopByHop.NextHeader
		}
	default:
		return p, errors.New("not IP")
	}
	for {
		var l gopacket.Layer
		switch next {
		case layers.IPProtocolIPv6HopByHop:
			var h layers.IPv6HopByHop
			if err := h.DecodeFromBytes(rest, df); err != nil {
				return p, fmt.Errorf("hop-by-hop: %w", err)
			}
			next, rest = h.NextHeader, h.Payload
			continue
		case layers.IPProtocolIPv6Destination:
			var h layers.IPv6Destination
			if err := h.DecodeFromBytes(rest, df); err != nil {
				return p, fmt.Errorf("destination options: %w", err)
			}
			next, rest = h.NextHeader, h.Payload
			continue
		case layers.IPProtocolIPv6Routing:
			l = firstLayer(rest, layers.LayerTypeIPv6Routing)
		case layers.IPProtocolAH:
			l = firstLayer(rest, layers.LayerTypeIPSecAH)
		case layers.IPProtocolIPv6Fragment:
			l = firstLayer(rest, layers.LayerTypeIPv6Fragment)
		default:
			p.Proto = uint8(next)
			return p, gopacketPorts(&p, rest)
		}
		switch h := l.(type) {
		case *layers.IPv6Routing:
			next, rest = h.NextHeader, h.Payload
		case *layers.IPSecAH:
			next, rest = h.NextHeader, h.Payload
		case *layers.IPv6Fragment:
			if h.FragmentOffset != 0 {
				p.Proto, p.Fragment = uint8(h.NextHeader), true
				return p, nil
			}
			next, rest = h.NextHeader, h.Payload
		default:
			return p, fmt.Errorf("gopacket refuses extension header %v", next)
		}
	}
}

// firstLayer decodes data as a layer of type t and returns it, or nil when
// gopacket refuses it. (Routing, AH and fragment headers have no
// DecodeFromBytes; their decoders add the layer only once it is valid.)
func firstLayer(data []byte, t gopacket.LayerType) gopacket.Layer {
	return gopacket.NewPacket(data, t, gopacket.DecodeOptions{Lazy: true, NoCopy: true}).Layer(t)
}

// gopacketPorts reads the ports and flags of TCP and UDP with gopacket.
func gopacketPorts(p *Packet, l4 []byte) error {
	switch p.Proto {
	case ProtoTCP:
		var tcp layers.TCP
		if err := tcp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			return fmt.Errorf("tcp: %w", err)
		}
		p.SrcPort, p.DstPort = uint16(tcp.SrcPort), uint16(tcp.DstPort)
		for _, f := range []struct {
			set bool
			bit uint8
		}{{tcp.FIN, 0x01}, {tcp.SYN, 0x02}, {tcp.RST, 0x04}, {tcp.PSH, 0x08}, {tcp.ACK, 0x10}, {tcp.URG, 0x20}, {tcp.ECE, 0x40}, {tcp.CWR, 0x80}} {
			if f.set {
				p.TCPFlags |= f.bit
			}
		}
	case ProtoUDP:
		var udp layers.UDP
		if err := udp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
			return fmt.Errorf("udp: %w", err)
		}
		p.SrcPort, p.DstPort = uint16(udp.SrcPort), uint16(udp.DstPort)
	}
	return nil
}

func addr(ip []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// normalize returns a copy of b (which ParsePacket reads as p) with every
// byte ParsePacket does not read made well-formed for gopacket (see
// FuzzParsePacketGopacket). unknownExt reports an extension header gopacket
// does not know (or a routing header of a type it does not decode), which
// explains a different reading of the original.
func normalize(t *testing.T, b []byte, p Packet) (n []byte, unknownExt bool) {
	t.Helper()
	n = append([]byte(nil), cutAtLength(b)...)
	var l4 int // offset of the transport header, or -1
	var ahAt, tlvEnd []int
	switch n[0] >> 4 {
	case 4:
		ihl := int(n[0]&0x0f) * 4
		for i := ipv4HeaderMin; i < ihl; i++ {
			n[i] = 1 // NOP
		}
		l4 = ihl
		if p.Fragment {
			l4 = -1
		}
	case 6:
		prevNext, off := 6, ipv6HeaderLen
		for l4 = 0; l4 == 0; {
			var hlen int
			switch kind := n[prevNext]; kind {
			case ipv6HopByHop, ipv6DestOpts, ipv6Routing, ipv6Mobility, ipv6HIP, ipv6Shim6:
				hlen = (int(n[off+1]) + 1) * 8
				if kind != ipv6HopByHop && kind != ipv6DestOpts {
					// gopacket decodes routing type 0 only and errs on
					// the others; it reads 135, 139 and 140 as transport.
					n[prevNext] = ipv6DestOpts
					unknownExt = unknownExt || unknownToGopacket(kind)
				}
				for i := off + 2; i < off+hlen && i < len(n); i++ {
					n[i] = 0 // Pad1
				}
				// gopacket reads two bytes for any option, Pad1 too: one
				// more byte must follow the header.
				tlvEnd = append(tlvEnd, off+hlen+1)
			case ipv6AH:
				hlen = (int(n[off+1]) + 2) * 4
				if hlen < 12 {
					// Shorter than AH's fixed part: gopacket fails
					// (slice bounds, recovered), the kernel skips 8
					// bytes as ParsePacket does. Destination options
					// with the same length byte are 8 bytes too.
					n[prevNext] = ipv6DestOpts
					for i := off + 2; i < off+hlen && i < len(n); i++ {
						n[i] = 0
					}
					tlvEnd = append(tlvEnd, off+hlen+1)
					break
				}
				ahAt = append(ahAt, off)
			case ipv6Fragment:
				hlen = 8
				if p.Fragment && binary.BigEndian.Uint16(n[off+2:off+4])>>3 != 0 {
					l4 = -1
				}
			default:
				l4 = off
			}
			if l4 == 0 {
				prevNext, off = off, off+hlen
			}
		}
	}
	need := len(n)
	if n[0]>>4 == 6 {
		need = max(need, ipv6HeaderLen+1) // a payload length of 0 is a jumbogram to gopacket
	}
	for _, at := range ahAt {
		need = max(need, at+12)
	}
	for _, end := range tlvEnd {
		need = max(need, end)
	}
	if l4 >= 0 {
		switch p.Proto {
		case ProtoTCP:
			need = max(need, l4+20)
		case ProtoUDP:
			need = max(need, l4+8)
		}
	}
	if need > 0xffff {
		t.Skip("normalized packet longer than 64 KiB")
	}
	n = append(n, make([]byte, need-len(n))...)
	if l4 >= 0 {
		switch p.Proto {
		case ProtoTCP:
			n[l4+12] = 5<<4 | n[l4+12]&0x0f // no options: data offset 5
		case ProtoUDP:
			binary.BigEndian.PutUint16(n[l4+4:], 0) // length from the IP header
		}
	}
	if n[0]>>4 == 4 {
		binary.BigEndian.PutUint16(n[2:4], uint16(len(n)))
	} else {
		if len(n)-ipv6HeaderLen > 0xffff {
			t.Skip("IPv6 payload longer than 64 KiB")
		}
		binary.BigEndian.PutUint16(n[4:6], uint16(len(n)-ipv6HeaderLen))
	}
	return n, unknownExt
}

// TestGopacketReference pins what the reference reads for the packets of
// TestParsePacket's main cases, so a broken reference cannot pass for an
// agreeing one.
func TestGopacketReference(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want Packet
	}{
		{"v4 tcp", ip4("192.0.2.1", "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), TCPAck|TCPFin)),
			Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPAck | TCPFin}},
		{"v6 udp behind hbh, routing, dstopts, ah, first fragment", ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 7, 8),
			ext6{kind: ipv6HopByHop, size: 8}, ext6{kind: ipv6DestOpts, size: 16}, ext6{kind: ipv6AH, size: 16}, ext6{kind: ipv6Fragment, size: 8}),
			Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 17, SrcPort: 7, DstPort: 8}},
		{"v6 later fragment", ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 7, 8), ext6{kind: ipv6Fragment, size: 8, fragOffset: 9}),
			Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6, Fragment: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gopacketParse(tt.pkt)
			if err != nil || got != tt.want {
				t.Errorf("gopacketParse() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	// The routing header of ip6() is type 0 with 16 bytes of addresses:
	// gopacket decodes it.
	rt := ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), ext6{kind: ipv6Routing, size: 24})
	if got, err := gopacketParse(rt); err != nil || got.DstPort != 2 {
		t.Errorf("routing header: %+v, %v", got, err)
	}
	// A Mobility header is one gopacket does not know.
	mob := ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), ext6{kind: ipv6Mobility, size: 8})
	if got, _ := gopacketParse(mob); got.Proto != ipv6Mobility {
		t.Errorf("gopacket reads a mobility header as %+v; the differences listed above are out of date", got)
	}
}
