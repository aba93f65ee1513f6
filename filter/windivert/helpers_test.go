package windivert

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// Packet builders: valid headers with the fields the parser reads.

func tcpHdr(sport, dport uint16, flags uint8) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	h[12] = 5 << 4
	h[13] = flags
	return h
}

func udpHdr(sport, dport uint16) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	binary.BigEndian.PutUint16(h[4:6], 8)
	return h
}

// pkt returns an IPv4 or IPv6 packet (by dst's family) from src to dst
// carrying l4 (proto TCP when l4 is 20 bytes, else UDP) and extra payload
// bytes.
func pkt(src, dst string, l4 []byte, payload int) []byte {
	proto := filter.ProtoUDP
	if len(l4) == 20 {
		proto = filter.ProtoTCP
	}
	body := append(append([]byte(nil), l4...), make([]byte, payload)...)
	d := netip.MustParseAddr(dst)
	s := netip.MustParseAddr(src)
	if d.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:4], uint16(20+len(body)))
		h[8] = 64
		h[9] = proto
		s4, d4 := s.As4(), d.As4()
		copy(h[12:16], s4[:])
		copy(h[16:20], d4[:])
		return append(h, body...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(body)))
	h[6] = proto
	h[7] = 64
	s16, d16 := s.As16(), d.As16()
	copy(h[8:24], s16[:])
	copy(h[24:40], d16[:])
	return append(h, body...)
}

func mustPorts(t testing.TB, s string) *filter.PortSet {
	t.Helper()
	ps, err := filter.ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// fill returns a table where every bucket belongs to owner.
func fill(owner uint8) *table.Table {
	t := new(table.Table)
	for i := range t {
		t[i] = owner
	}
	return t
}

// exampleSpec is the spec of the report: an IPv4 and an IPv6 VIP, TCP 80
// and 443, UDP 53.
func exampleSpec(t testing.TB) Spec {
	return Spec{
		Self: 1,
		VIPs: []vip.Config{
			{Addr: netip.MustParseAddr("10.0.0.100"), Interface: "Ethernet", Mode: vip.ModeMulticast},
			{Addr: netip.MustParseAddr("2001:db8::100"), Interface: "Ethernet", Mode: vip.ModeMulticast},
		},
		Rules: []filter.Rule{
			{Proto: filter.ProtoTCP, Ports: mustPorts(t, "80,443"), Affinity: filter.AffinityIP},
			{Proto: filter.ProtoUDP, Ports: mustPorts(t, "53"), Affinity: filter.AffinityIPPort},
		},
		StateDir: t.TempDir(),
	}
}

// key returns the flow key of a built packet.
func key(t testing.TB, b []byte) FlowKey {
	t.Helper()
	p, err := filter.ParsePacket(b)
	if err != nil {
		t.Fatal(err)
	}
	return KeyOf(&p)
}
