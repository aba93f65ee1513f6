package lab

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// frame builds an Ethernet frame carrying a TCP segment with the given flags.
func frame(t *testing.T, srcMAC string, src, dst netip.AddrPort, flags byte, ack uint32, ext bool) []byte {
	t.Helper()
	mac, err := net.ParseMAC(srcMAC)
	if err != nil {
		t.Fatal(err)
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	f := append([]byte{0x02, 0, 0, 0, 0, 0xc8}, mac...)
	if src.Addr().Is4() {
		f = binary.BigEndian.AppendUint16(f, 0x0800)
		ip := make([]byte, 20)
		ip[0], ip[9] = 0x45, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(append(f, ip...), tcp...)
	}
	f = binary.BigEndian.AppendUint16(f, 0x86dd)
	ip := make([]byte, 40)
	ip[0], ip[6] = 0x60, 6
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	f = append(f, ip...)
	if ext {
		f[14+6] = 0                           // hop-by-hop options first
		f = append(f, 6, 0, 1, 4, 0, 0, 0, 0) // then TCP; 8 bytes of padding options
	}
	return append(f, tcp...)
}

func TestParseSynAck(t *testing.T) {
	vip4 := netip.MustParseAddrPort("10.213.0.100:80")
	cl4 := netip.MustParseAddrPort("10.213.1.1:40000")
	vip6 := netip.MustParseAddrPort("[fd00:213::100]:80")
	cl6 := netip.MustParseAddrPort("[fd00:213:0:1::1]:40000")
	tests := []struct {
		name string
		f    []byte
		ok   bool
	}{
		{"v4 syn-ack", frame(t, "02:1a:b0:00:00:01", vip4, cl4, 0x12, 7, false), true},
		{"v6 syn-ack", frame(t, "02:1a:b0:00:00:02", vip6, cl6, 0x12, 7, false), true},
		{"v6 syn-ack behind hop-by-hop", frame(t, "02:1a:b0:00:00:02", vip6, cl6, 0x12, 7, true), true},
		{"v4 syn", frame(t, "02:1a:b0:00:00:01", cl4, vip4, 0x02, 0, false), false},
		{"v4 ack", frame(t, "02:1a:b0:00:00:01", vip4, cl4, 0x10, 7, false), false},
		{"short", []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := parseSynAck(tt.f)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (s.Ack != 7 || s.Server.Port() != 80 || s.Client.Port() != 40000) {
				t.Errorf("parsed %+v", s)
			}
		})
	}
}

func TestSynTrackerDoubles(t *testing.T) {
	names := map[string]string{"02:1a:b0:00:00:01": "web1", "02:1a:b0:00:00:02": "web2"}
	tr := newSynTracker(func(m string) string {
		if n, ok := names[m]; ok {
			return n
		}
		return m
	})
	vip := netip.MustParseAddrPort("10.213.0.100:80")
	a := netip.MustParseAddrPort("10.213.1.1:40000")
	b := netip.MustParseAddrPort("10.213.1.2:40000")
	add := func(mac string, cl netip.AddrPort, ack uint32) {
		tr.add(SynAck{SrcMAC: mac, Server: vip, Client: cl, Ack: ack})
	}
	add("02:1a:b0:00:00:01", a, 100) // a's SYN answered by web1
	add("02:1a:b0:00:00:01", a, 100) // retransmitted SYN-ACK, same node: fine
	add("02:1a:b0:00:00:02", a, 900) // same client port reused later, new ISN: fine
	add("02:1a:b0:00:00:01", b, 5)   // b's SYN answered by web1 ...
	add("02:1a:b0:00:00:02", b, 5)   // ... and web2: a double
	r := tr.report()
	if r.SynAcks != 5 || r.BySource["web1"] != 3 || r.BySource["web2"] != 2 {
		t.Errorf("counts %+v", r)
	}
	if len(r.Doubles) != 1 || r.Doubles[0].Client != b || r.Doubles[0].Nodes[0] != "web1" || r.Doubles[0].Nodes[1] != "web2" {
		t.Fatalf("doubles %+v", r.Doubles)
	}
	if got := r.Doubles[0].String(); got != "SYN 10.213.1.2:40000 -> 10.213.0.100:80 (isn+1 5) answered by web1 and web2" {
		t.Errorf("String() = %q", got)
	}
}

func TestPcapStream(t *testing.T) {
	vip := netip.MustParseAddrPort("10.213.0.100:80")
	cl := netip.MustParseAddrPort("10.213.1.1:40000")
	frames := [][]byte{
		frame(t, "02:1a:b0:00:00:01", vip, cl, 0x12, 1, false),
		markerFrame(net.HardwareAddr{2, 0, 0, 0, 0, 0xc8}, 42),
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		var b bytes.Buffer
		hdr := make([]byte, 24)
		order.PutUint32(hdr, 0xa1b2c3d4)
		order.PutUint32(hdr[20:], 1)
		b.Write(hdr)
		for _, f := range frames {
			rec := make([]byte, 16)
			order.PutUint32(rec[8:], uint32(len(f)))
			order.PutUint32(rec[12:], uint32(len(f)))
			b.Write(rec)
			b.Write(f)
		}
		pr, err := newPcapReader(&b)
		if err != nil {
			t.Fatal(err)
		}
		f, err := pr.next()
		if _, ok := parseSynAck(f); err != nil || !ok {
			t.Errorf("%v: first frame not a SYN-ACK (%v)", order, err)
		}
		f, err = pr.next()
		if n, ok := parseMarker(f); err != nil || !ok || n != 42 {
			t.Errorf("%v: second frame marker = %d, %v (%v)", order, n, ok, err)
		}
		if _, err := pr.next(); err == nil {
			t.Errorf("%v: no end of stream", order)
		}
	}
	if _, err := newPcapReader(bytes.NewReader(make([]byte, 24))); err == nil {
		t.Error("zero header accepted as pcap")
	}
}

func TestParseDropped(t *testing.T) {
	if n := parseDropped("12 packets captured\n12 packets received by filter\n3 packets dropped by kernel\n"); n != 3 {
		t.Errorf("parseDropped = %d, want 3", n)
	}
}
