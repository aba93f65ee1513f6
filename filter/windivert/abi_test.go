package windivert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// TestAddressLayout pins WINDIVERT_ADDRESS: 80 bytes, 8-byte aligned, the
// bit-fields where MSVC and MinGW put them, the network data at offset 16.
func TestAddressLayout(t *testing.T) {
	var a Address
	if s := unsafe.Sizeof(a); s != AddressSize {
		t.Fatalf("sizeof(Address) = %d, want %d", s, AddressSize)
	}
	if al := unsafe.Alignof(a); al != 8 {
		t.Fatalf("alignof(Address) = %d, want 8", al)
	}
	if o := unsafe.Offsetof(a.bits); o != 8 {
		t.Fatalf("bit-fields at %d, want 8", o)
	}
	if o := unsafe.Offsetof(a.union); o != 16 {
		t.Fatalf("union at %d, want 16", o)
	}
	// An address as the driver would write it: layer 0, event 0,
	// outbound 0, IPv6, IP+TCP checksums valid, impostor; IfIdx 12,
	// SubIfIdx 3; timestamp 0x0102030405060708.
	raw := make([]byte, AddressSize)
	binary.LittleEndian.PutUint64(raw[0:8], 0x0102030405060708)
	binary.LittleEndian.PutUint32(raw[8:12], 1<<20|1<<21|1<<22|1<<19)
	binary.LittleEndian.PutUint32(raw[16:20], 12)
	binary.LittleEndian.PutUint32(raw[20:24], 3)
	b := (*Address)(unsafe.Pointer(&raw[0]))
	checks := []struct {
		name      string
		got, want any
	}{
		{"timestamp", b.Timestamp, int64(0x0102030405060708)},
		{"layer", b.Layer(), uint8(LayerNetwork)},
		{"event", b.Event(), uint8(0)},
		{"sniffed", b.Sniffed(), false},
		{"outbound", b.Outbound(), false},
		{"loopback", b.Loopback(), false},
		{"impostor", b.Impostor(), true},
		{"ipv6", b.IPv6(), true},
		{"ip checksum", b.IPChecksum(), true},
		{"tcp checksum", b.TCPChecksum(), true},
		{"udp checksum", b.UDPChecksum(), false},
		{"ifidx", b.IfIdx(), uint32(12)},
		{"subifidx", b.SubIfIdx(), uint32(3)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	b.SetOutbound(true)
	b.SetInterface(7, 0)
	if raw[10] != 1<<(20-16)|1<<(21-16)|1<<(22-16)|1<<(19-16)|1<<(17-16) {
		t.Errorf("SetOutbound wrote %08b", raw[10])
	}
	if !bytes.Equal(raw[16:24], []byte{7, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("SetInterface wrote % x", raw[16:24])
	}
	b.SetOutbound(false)
	if b.Outbound() {
		t.Error("SetOutbound(false) did not clear the bit")
	}
	// Layer and event sit in the low two bytes.
	binary.LittleEndian.PutUint32(raw[8:12], 0x0000_0902)
	if b.Layer() != 2 || b.Event() != 9 {
		t.Errorf("layer %d event %d, want 2 and 9", b.Layer(), b.Event())
	}
}

func TestPacketLen(t *testing.T) {
	v4 := pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 80, syn), 7)
	v6 := pkt("2001:db8:1::1", "2001:db8::100", udpHdr(1, 53), 3)
	cases := []struct {
		name string
		b    []byte
		want int
		err  bool
	}{
		{"ipv4", v4, len(v4), false},
		{"ipv4 followed by more", append(append([]byte(nil), v4...), v6...), len(v4), false},
		{"ipv6", v6, len(v6), false},
		{"ipv4 cut short", v4[:len(v4)-1], 0, true},
		{"ipv6 cut short", v6[:len(v6)-1], 0, true},
		{"ipv4 header only part", v4[:10], 0, true},
		{"ipv4 total length below its header", func() []byte { b := append([]byte(nil), v4...); b[2], b[3] = 0, 12; return b }(), 0, true},
		{"not ip", []byte{0x50, 0, 0, 0}, 0, true},
		{"empty", nil, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := packetLen(c.b)
			if (err != nil) != c.err || n != c.want {
				t.Fatalf("packetLen = %d, %v; want %d, error %v", n, err, c.want, c.err)
			}
		})
	}
}

// TestDecideBatch: the kept packets and their addresses end up at the
// front, in order; a bad length ends the batch.
func TestDecideBatch(t *testing.T) {
	pkts := [][]byte{
		pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 80, syn), 0),
		pkt("192.0.2.2", "10.0.0.100", tcpHdr(2, 80, syn), 30),
		pkt("2001:db8:1::1", "2001:db8::100", udpHdr(3, 53), 5),
		pkt("192.0.2.4", "10.0.0.100", tcpHdr(4, 80, ack), 1),
	}
	build := func() ([]byte, []Address) {
		var buf []byte
		addrs := make([]Address, len(pkts))
		for i, p := range pkts {
			buf = append(buf, p...)
			addrs[i].SetInterface(uint32(10+i), 0)
		}
		return append(buf, make([]byte, 100)...), addrs // spare room past the batch
	}
	keepOdd := func(pkt []byte, a *Address) bool { return a.IfIdx()%2 == 1 }
	buf, addrs := build()
	recvd := len(buf) - 100
	sendLen, sendN, err := decideBatch(buf, recvd, addrs, len(pkts), keepOdd)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), pkts[1]...), pkts[3]...)
	if sendN != 2 || !bytes.Equal(buf[:sendLen], want) || addrs[0].IfIdx() != 11 || addrs[1].IfIdx() != 13 {
		t.Fatalf("kept %d packets (%d bytes), addresses %d %d", sendN, sendLen, addrs[0].IfIdx(), addrs[1].IfIdx())
	}

	// All kept: nothing moves.
	buf, addrs = build()
	sendLen, sendN, err = decideBatch(buf, recvd, addrs, len(pkts), func([]byte, *Address) bool { return true })
	if err != nil || sendN != 4 || sendLen != recvd {
		t.Fatalf("keep all: %d packets, %d bytes, %v", sendN, sendLen, err)
	}

	// A count that promises more packets than the bytes hold.
	buf, addrs = build()
	addrs = append(addrs, Address{})
	seen := 0
	_, sendN, err = decideBatch(buf, recvd, addrs, len(pkts)+1, func([]byte, *Address) bool { seen++; return true })
	if !errors.Is(err, errBadBatch) || seen != 4 || sendN != 4 {
		t.Fatalf("short batch: err %v after %d packets, kept %d", err, seen, sendN)
	}
}
