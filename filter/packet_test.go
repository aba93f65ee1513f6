package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/webfarm/farm/farm/table"
)

func TestParsePacket(t *testing.T) {
	v4tcp := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 80))
	v6tcp := ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 40000, 443))

	withOptions := func() []byte { // IHL 6: one word of options
		p := ip4("192.0.2.1", "10.0.0.100", ProtoUDP, append(make([]byte, 4), l4(ProtoUDP, 5353, 53)...))
		p[0] = 0x46
		return p
	}
	frag4 := func(offset uint16, mf bool) []byte {
		p := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 80))
		v := offset
		if mf {
			v |= 0x2000
		}
		binary.BigEndian.PutUint16(p[6:8], v)
		return p
	}
	set := func(p []byte, i int, v byte) []byte { q := append([]byte(nil), p...); q[i] = v; return q }
	setTotal := func(p []byte, n uint16) []byte {
		q := append([]byte(nil), p...)
		binary.BigEndian.PutUint16(q[2:4], n)
		return q
	}
	hbh := ext6{kind: ipv6HopByHop, size: 8}
	dst := ext6{kind: ipv6DestOpts, size: 16}
	rt := ext6{kind: ipv6Routing, size: 24}
	ah := ext6{kind: ipv6AH, size: 16}
	manyDst := func(n int) []ext6 {
		e := make([]ext6, n)
		for i := range e {
			e[i] = ext6{kind: ipv6DestOpts, size: 8}
		}
		return e
	}

	tests := []struct {
		name string
		pkt  []byte
		want Packet
		err  error
	}{
		{name: "v4 tcp", pkt: v4tcp, want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{name: "v4 udp", pkt: ip4("198.51.100.7", "10.0.0.100", ProtoUDP, l4(ProtoUDP, 1234, 53)),
			want: Packet{Src: a("198.51.100.7"), Dst: a("10.0.0.100"), Proto: 17, SrcPort: 1234, DstPort: 53}},
		{name: "v4 options", pkt: withOptions(), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 17, SrcPort: 5353, DstPort: 53}},
		{name: "v4 cut by copy range", pkt: setTotal(v4tcp, 1500), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{name: "v4 total length 0 (offload)", pkt: setTotal(v4tcp, 0), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{name: "v4 padding is not payload", pkt: setTotal(v4tcp, 22), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6}, err: ErrTruncated},
		{name: "v4 first fragment has ports", pkt: frag4(0, true), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{name: "v4 later fragment", pkt: frag4(185, true), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, Fragment: true}},
		{name: "v4 last fragment", pkt: frag4(370, false), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, Fragment: true}},
		{name: "v4 icmp has no ports", pkt: ip4("192.0.2.1", "10.0.0.100", 1, l4(1, 0x0800, 0)), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 1}},
		{name: "v4 tcp ack", pkt: ip4("192.0.2.1", "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), TCPAck|0x08)),
			want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPAck | 0x08}},
		{name: "v4 tcp flags cut", pkt: v4tcp[:33], want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6}, err: ErrTruncated},
		{name: "v4 tcp up to flags", pkt: setTotal(v4tcp[:34], 34), want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6, SrcPort: 40000, DstPort: 80, TCPFlags: TCPSyn}},
		{name: "v4 udp needs only ports", pkt: ip4("192.0.2.1", "10.0.0.100", ProtoUDP, l4(ProtoUDP, 1, 2)[:4]),
			want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 17, SrcPort: 1, DstPort: 2}},
		{name: "v4 ports cut", pkt: v4tcp[:23], want: Packet{Src: a("192.0.2.1"), Dst: a("10.0.0.100"), Proto: 6}, err: ErrTruncated},
		{name: "v4 header cut", pkt: v4tcp[:19], err: ErrTruncated},
		{name: "v4 IHL 4", pkt: set(v4tcp, 0, 0x44), err: ErrBadHeader},
		{name: "v4 IHL beyond data", pkt: set(v4tcp[:24], 0, 0x4f), err: ErrTruncated},
		{name: "v4 total shorter than header", pkt: setTotal(v4tcp, 19), err: ErrBadHeader},
		{name: "empty", pkt: nil, err: ErrTruncated},
		{name: "version 5", pkt: set(v4tcp, 0, 0x55), err: ErrNotIP},
		{name: "version 0", pkt: []byte{0}, err: ErrNotIP},

		{name: "v6 tcp", pkt: v6tcp, want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6, SrcPort: 40000, DstPort: 443, TCPFlags: TCPSyn}},
		{name: "v6 udp", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 5000, 53)),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 17, SrcPort: 5000, DstPort: 53}},
		{name: "v6 hbh+routing+dstopts+ah", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), hbh, rt, dst, ah),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: TCPSyn}},
		{name: "v6 first fragment has ports", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 7, 8), ext6{kind: ipv6Fragment, size: 8}),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 17, SrcPort: 7, DstPort: 8}},
		{name: "v6 later fragment", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 7, 8), hbh, ext6{kind: ipv6Fragment, size: 8, fragOffset: 100}),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 17, Fragment: true}},
		{name: "v6 8 extension headers", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), manyDst(MaxExtHeaders)...),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: TCPSyn}},
		{name: "v6 too many extension headers", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), manyDst(MaxExtHeaders+1)...),
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100")}, err: ErrTooManyHeaders},
		{name: "v6 icmpv6", pkt: ip6("fe80::1", "ff02::1", 58, l4(58, 0x8700, 0)), want: Packet{Src: a("fe80::1"), Dst: a("ff02::1"), Proto: 58}},
		{name: "v6 esp hides ports", pkt: ip6("2001:db8::1", "2001:db8::100", 50, l4(50, 1, 2)), want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 50}},
		{name: "v6 no next header", pkt: ip6("2001:db8::1", "2001:db8::100", 59, nil), want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 59}},
		{name: "v6 header cut", pkt: v6tcp[:39], err: ErrTruncated},
		{name: "v6 ports cut", pkt: v6tcp[:43], want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6}, err: ErrTruncated},
		{name: "v6 extension header cut", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), hbh)[:41],
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100")}, err: ErrTruncated},
		{name: "v6 extension header longer than packet", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 2), ext6{kind: ipv6DestOpts, size: 64})[:60],
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100"), Proto: 6}, err: ErrTruncated},
		{name: "v6 fragment header cut", pkt: ip6("2001:db8::1", "2001:db8::100", ProtoTCP, nil, ext6{kind: ipv6Fragment, size: 8})[:45],
			want: Packet{Src: a("2001:db8::1"), Dst: a("2001:db8::100")}, err: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePacket(tt.pkt)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParsePacket() error = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("ParsePacket() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestIsSYN(t *testing.T) {
	tests := []struct {
		proto, flags uint8
		want         bool
	}{
		{ProtoTCP, TCPSyn, true},
		{ProtoTCP, TCPSyn | 0x08 | 0x20 | 0x40 | 0x80, true}, // PSH, URG, ECE, CWR do not matter
		{ProtoTCP, TCPSyn | TCPAck, false},
		{ProtoTCP, TCPSyn | TCPFin, false},
		{ProtoTCP, TCPSyn | TCPRst, false},
		{ProtoTCP, TCPAck, false},
		{ProtoTCP, TCPAck | 0x08, false},
		{ProtoTCP, TCPFin | TCPAck, false},
		{ProtoTCP, TCPRst, false},
		{ProtoTCP, 0, false},
		{ProtoUDP, TCPSyn, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%#02x", ProtoName(tt.proto), tt.flags), func(t *testing.T) {
			if got := (Packet{Proto: tt.proto, TCPFlags: tt.flags}).IsSYN(); got != tt.want {
				t.Errorf("IsSYN() = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParsePacket checks that no input panics the parser or the decider,
// and that whatever the parser accepts is decided on the same bucket that
// BucketOf gives (the packet path and the tools must agree).
func FuzzParsePacket(f *testing.F) {
	hbh := ext6{kind: ipv6HopByHop, size: 8}
	seeds := [][]byte{
		ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 80)),
		ip4("192.0.2.1", "10.0.0.100", ProtoUDP, l4(ProtoUDP, 40000, 53)),
		ip4("192.0.2.7", "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), TCPAck)),
		ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 40000, 443)),
		ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 7, 53), hbh, ext6{kind: ipv6Fragment, size: 8}),
		ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 1, 80), hbh, ext6{kind: ipv6AH, size: 16}, ext6{kind: ipv6Routing, size: 24}),
		{0x45}, {0x60}, nil,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	ports, _ := ParsePorts("1-65535")
	tb := new(table.Table)
	for i := range tb {
		tb[i] = uint8(i%3 + 1)
	}
	deciders := []*Decider{
		NewDecider(1, []Rule{{Proto: ProtoTCP, Ports: ports, Affinity: AffinityIP}, {Proto: ProtoUDP, Ports: ports, Affinity: AffinityIP}}),
		NewDecider(2, []Rule{{Proto: ProtoTCP, Ports: ports, Affinity: AffinityIPPort}, {Proto: ProtoUDP, Ports: ports, Affinity: AffinityIPPort}}),
		NewDecider(3, []Rule{{Proto: ProtoTCP, Ports: ports, Affinity: AffinityNetwork}, {Proto: ProtoUDP, Ports: ports, Affinity: AffinityNetwork}}),
	}
	for _, d := range deciders {
		d.SetTable(tb)
	}
	// Decider 2 took over every bucket of its own from a dead node.
	taken := new(table.Set)
	for b := range tb {
		if tb[b] == 2 {
			taken.Add(uint16(b))
		}
	}
	deciders[1].SetTakeover(taken)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		for _, d := range deciders {
			dec := d.Decide(b)
			if err != nil {
				if dec.Reason != ReasonMalformed || dec.Verdict != Drop {
					t.Fatalf("parse error %v but decision %+v", err, dec)
				}
				continue
			}
			if p.Fragment {
				if dec.Reason != ReasonFragment {
					t.Fatalf("fragment but decision %+v", dec)
				}
				continue
			}
			if p.Proto != ProtoTCP && p.Proto != ProtoUDP || p.DstPort == 0 {
				if dec.Reason != ReasonNoRule {
					t.Fatalf("proto %d port %d but decision %+v", p.Proto, p.DstPort, dec)
				}
				continue
			}
			if want := BucketOf(p.Src, p.SrcPort, d.rules[0].Affinity); dec.Bucket != want {
				t.Fatalf("Decide bucket %d, BucketOf %d", dec.Bucket, want)
			}
			mine := tb[dec.Bucket] == d.Self()
			opens := p.Proto == ProtoUDP || p.IsSYN()
			if (dec.Verdict == Accept) != (mine && opens) {
				t.Fatalf("decision %+v with owner %d for self %d, flags %#x", dec, tb[dec.Bucket], d.Self(), p.TCPFlags)
			}
			if (dec.Verdict == Reset) != (mine && !opens && d.Takeover().Has(dec.Bucket)) {
				t.Fatalf("decision %+v with owner %d for self %d, flags %#x, takeover %v", dec, tb[dec.Bucket], d.Self(), p.TCPFlags, d.Takeover() != nil)
			}
		}
	})
}
