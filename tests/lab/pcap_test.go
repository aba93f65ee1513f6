package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
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
		binary.BigEndian.PutUint16(ip[2:], 40)
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(append(f, ip...), tcp...)
	}
	f = binary.BigEndian.AppendUint16(f, 0x86dd)
	ip := make([]byte, 40)
	ip[0], ip[6] = 0x60, 6
	binary.BigEndian.PutUint16(ip[4:], 20)
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	f = append(f, ip...)
	if ext {
		f[14+6] = 0                           // hop-by-hop options first
		f[14+5] += 8                          // in the payload length
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
		{"v4 syn-ack in a VLAN", gpFrame(t, gpOpts{vlan: 213}, vip4, cl4, 0x12, 7), true},
		{"v6 syn-ack behind destination options, in a VLAN", gpFrame(t, gpOpts{vlan: 213, dstOpts: true}, vip6, cl6, 0x12, 7), true},
		{"v6 syn-ack with a TCP option", gpFrame(t, gpOpts{mss: true}, vip6, cl6, 0x12, 7), true},
		{"v4 later fragment", gpFrame(t, gpOpts{fragOffset: 10}, vip4, cl4, 0x12, 7), false},
		{"v4 first fragment", gpFrame(t, gpOpts{moreFrags: true}, vip4, cl4, 0x12, 7), false},
		{"v6 syn-ack cut in its TCP header", frame(t, "02:1a:b0:00:00:02", vip6, cl6, 0x12, 7, false)[:14+40+19], false},
		{"v4 syn-ack padded to 64 bytes", append(frame(t, "02:1a:b0:00:00:01", vip4, cl4, 0x12, 7, false), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), true},
		{"marker", markerFrame(net.HardwareAddr{2, 0, 0, 0, 0, 0xc8}, 1), false},
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

// gpOpts shape a frame built with gopacket's serializers (independent of
// frame's hand-made bytes).
type gpOpts struct {
	vlan       uint16 // 802.1Q tag; 0: none
	dstOpts    bool   // IPv6: a destination options header before TCP
	mss        bool   // a TCP MSS option
	fragOffset uint16 // IPv4 fragment offset, in 8-byte units
	moreFrags  bool
	srcMAC     net.HardwareAddr
	payload    []byte
}

func gpFrame(t testing.TB, o gpOpts, src, dst netip.AddrPort, flags byte, ack uint32) []byte {
	t.Helper()
	if o.srcMAC == nil {
		o.srcMAC = net.HardwareAddr{0x02, 0x1a, 0xb0, 0, 0, 1}
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1, Ack: ack, Window: 64240,
		FIN: flags&0x01 != 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0, PSH: flags&0x08 != 0,
		ACK: flags&0x10 != 0, URG: flags&0x20 != 0, ECE: flags&0x40 != 0, CWR: flags&0x80 != 0}
	if o.mss {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	}
	eth := &layers.Ethernet{SrcMAC: o.srcMAC, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xc8}}
	var ls []gopacket.SerializableLayer
	et := layers.EthernetTypeIPv4
	if src.Addr().Is6() {
		et = layers.EthernetTypeIPv6
	}
	if o.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, eth, &layers.Dot1Q{VLANIdentifier: o.vlan, Type: et})
	} else {
		eth.EthernetType = et
		ls = append(ls, eth)
	}
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(), FragOffset: o.fragOffset}
		if o.moreFrags {
			ip.Flags = layers.IPv4MoreFragments
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip)
		if o.dstOpts {
			ip.NextHeader = layers.IPProtocolIPv6Destination
			d := &layers.IPv6Destination{}
			d.NextHeader = layers.IPProtocolTCP
			d.Options = []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			ls = append(ls, d)
		}
	}
	ls = append(ls, tcp, gopacket.Payload(o.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzSynAckFrame builds frames with gopacket's serializers from fuzzed
// fields and checks that the capture's parser finds a SYN-ACK exactly when
// SYN and ACK are set, with the addresses, ports, ack number and source MAC
// that went in; and that no cut of any frame panics it.
func FuzzSynAckFrame(f *testing.F) {
	f.Add(false, uint16(0), false, false, []byte{2, 0x1a, 0xb0, 0, 0, 1}, []byte{10, 213, 0, 100}, []byte{10, 213, 1, 1}, uint16(80), uint16(40000), uint32(7), uint8(0x12), []byte(nil), uint16(0))
	f.Add(true, uint16(213), true, true, []byte{2, 0x1a, 0xb0, 0, 0, 2}, netip.MustParseAddr("fd00:213::100").AsSlice(), netip.MustParseAddr("fd00:213:0:1::1").AsSlice(), uint16(443), uint16(1), uint32(1<<31), uint8(0x12|0x08), []byte("x"), uint16(70))
	f.Add(false, uint16(5), false, false, []byte{2, 0, 0, 0, 0, 9}, []byte{192, 0, 2, 1}, []byte{192, 0, 2, 2}, uint16(80), uint16(40000), uint32(0), uint8(0x02), []byte(nil), uint16(30))
	f.Add(true, uint16(0), false, false, []byte{2, 0, 0, 0, 0, 9}, netip.MustParseAddr("::ffff:10.0.0.1").AsSlice(), netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(80), uint16(40000), uint32(9), uint8(0x10), []byte(nil), uint16(0))
	f.Fuzz(func(t *testing.T, v6 bool, vlan uint16, dstOpts, mss bool, mac, server, client []byte, sport, dport uint16, ack uint32, flags uint8, payload []byte, cut uint16) {
		n := 4
		if v6 {
			n = 16
		}
		if len(mac) != 6 || len(server) != n || len(client) != n || len(payload) > 1000 {
			return
		}
		sa, _ := netip.AddrFromSlice(server)
		ca, _ := netip.AddrFromSlice(client)
		o := gpOpts{vlan: vlan & 0x0fff, dstOpts: dstOpts && v6, mss: mss, srcMAC: net.HardwareAddr(mac), payload: payload}
		fr := gpFrame(t, o, netip.AddrPortFrom(sa, sport), netip.AddrPortFrom(ca, dport), flags, ack)
		s, ok := parseSynAck(fr)
		if want := flags&0x12 == 0x12; ok != want {
			t.Fatalf("flags %#x: SYN-ACK %v, want %v (%x)", flags, ok, want, fr)
		}
		if ok && (s.SrcMAC != net.HardwareAddr(mac).String() || s.Server != netip.AddrPortFrom(sa, sport) ||
			s.Client != netip.AddrPortFrom(ca, dport) || s.Ack != ack) {
			t.Fatalf("parsed %+v from %x", s, fr)
		}
		if _, ok := parseMarker(fr); ok {
			t.Fatalf("a TCP frame read as a marker: %x", fr)
		}
		c := int(cut) % (len(fr) + 1)
		parseSynAck(fr[:c])
		parseMarker(fr[:c])
		if m, ok := parseMarker(markerFrame(net.HardwareAddr(mac), uint64(ack)<<32|uint64(cut))); !ok || m != uint64(ack)<<32|uint64(cut) {
			t.Fatalf("marker %d read back as %d, %v", uint64(ack)<<32|uint64(cut), m, ok)
		}
	})
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
		hdr := make([]byte, 24) // as tcpdump -w - writes it
		order.PutUint32(hdr, 0xa1b2c3d4)
		order.PutUint16(hdr[4:], 2)
		order.PutUint16(hdr[6:], 4)
		order.PutUint32(hdr[16:], 160)
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
		fp := newFrameParser()
		f, _, err := pr.ZeroCopyReadPacketData()
		if _, ok := fp.synAck(f); err != nil || !ok {
			t.Errorf("%v: first frame not a SYN-ACK (%v)", order, err)
		}
		f, _, err = pr.ZeroCopyReadPacketData()
		if n, ok := fp.marker(f); err != nil || !ok || n != 42 {
			t.Errorf("%v: second frame marker = %d, %v (%v)", order, n, ok, err)
		}
		if _, _, err := pr.ZeroCopyReadPacketData(); !errors.Is(err, io.EOF) {
			t.Errorf("%v: no end of stream: %v", order, err)
		}
	}
	// What pcapgo's own writer writes reads back too.
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(160, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(frames[0]), Length: len(frames[0])}, frames[0]); err != nil {
		t.Fatal(err)
	}
	if pr, err := newPcapReader(&b); err != nil {
		t.Error(err)
	} else if f, _, err := pr.ReadPacketData(); err != nil {
		t.Error(err)
	} else if _, ok := parseSynAck(f); !ok {
		t.Error("frame written by pcapgo is not a SYN-ACK")
	}

	if _, err := newPcapReader(bytes.NewReader(make([]byte, 24))); err == nil {
		t.Error("zero header accepted as pcap")
	}
	if _, err := newPcapReader(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("empty stream (tcpdump gone before its header): %v, want EOF", err)
	}
	b.Reset()
	w = pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(160, layers.LinkTypeLinuxSLL); err != nil {
		t.Fatal(err)
	}
	if _, err := newPcapReader(&b); !errors.Is(err, errNotEthernet) {
		t.Errorf("cooked capture: %v, want errNotEthernet", err)
	}
}

func TestParseDropped(t *testing.T) {
	if n := parseDropped("12 packets captured\n12 packets received by filter\n3 packets dropped by kernel\n"); n != 3 {
		t.Errorf("parseDropped = %d, want 3", n)
	}
}
