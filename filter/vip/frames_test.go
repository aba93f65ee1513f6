package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

var (
	ownMAC    = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	clientMAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
	vip4      = netip.MustParseAddr("10.77.0.100")
	vip6      = netip.MustParseAddr("fd77::100")
	client4   = netip.MustParseAddr("10.77.0.10")
	client6   = netip.MustParseAddr("fd77::10")
)

func arpFrameT(t *testing.T, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, ethernet.Broadcast, tpa)
	if err != nil {
		t.Fatal(err)
	}
	f, err := arpFrame(p, ethernet.Broadcast, sha)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestARPReply(t *testing.T) {
	vmac := VirtualMAC(vip4, ModeVMAC)
	tests := []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{"request for vip", arpFrameT(t, arp.OperationRequest, clientMAC, client4, vip4), true},
		{"probe for vip", arpFrameT(t, arp.OperationRequest, clientMAC, netip.IPv4Unspecified(), vip4), true},
		{"request for another ip", arpFrameT(t, arp.OperationRequest, clientMAC, client4, netip.MustParseAddr("10.77.0.1")), false},
		{"peer's gratuitous request", arpFrameT(t, arp.OperationRequest, vmac, vip4, vip4), false},
		{"reply", arpFrameT(t, arp.OperationReply, clientMAC, client4, vip4), false},
		{"truncated", arpFrameT(t, arp.OperationRequest, clientMAC, client4, vip4)[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, ok := arpRequestFor(tt.frame, vip4)
			if ok != tt.answer {
				t.Fatalf("arpRequestFor answer = %v, want %v", ok, tt.answer)
			}
			// The kernel filter must agree with the Go parser, except for
			// the gratuitous case that only the parser sees through.
			if got := runFilter(t, arpChecks(vip4), tt.frame); got != tt.answer && tt.name != "peer's gratuitous request" {
				t.Errorf("socket filter keeps = %v, want %v", got, tt.answer)
			}
			if !ok {
				return
			}
			b, err := arpReplyFrame(req, ownMAC, vmac, vip4)
			if err != nil {
				t.Fatal(err)
			}
			var f ethernet.Frame
			if err := f.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Source, ownMAC) || !bytes.Equal(f.Destination, clientMAC) {
				t.Fatalf("Ethernet %v -> %v, want %v -> %v", f.Source, f.Destination, ownMAC, clientMAC)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(f.Payload); err != nil {
				t.Fatal(err)
			}
			if p.Operation != arp.OperationReply || !bytes.Equal(p.SenderHardwareAddr, vmac) || p.SenderIP != vip4 ||
				!bytes.Equal(p.TargetHardwareAddr, clientMAC) || p.TargetIP != req.SenderIP {
				t.Fatalf("reply payload = %+v", p)
			}
		})
	}
}

func TestGratuitousARP(t *testing.T) {
	vmac := VirtualMAC(vip4, ModeMulticast)
	b, err := gratuitousARPFrame(ownMAC, vmac, vip4)
	if err != nil {
		t.Fatal(err)
	}
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Source, ownMAC) || !bytes.Equal(f.Destination, ethernet.Broadcast) {
		t.Fatalf("Ethernet %v -> %v", f.Source, f.Destination)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	if p.Operation != arp.OperationRequest || !bytes.Equal(p.SenderHardwareAddr, vmac) || p.SenderIP != vip4 || p.TargetIP != vip4 {
		t.Fatalf("announcement payload = %+v", p)
	}
}

// nsFrameT builds Ethernet/IPv6/NS as a client kernel sends it.
func nsFrameT(t *testing.T, src, dst, target netip.Addr, hop byte, slla net.HardwareAddr) []byte {
	t.Helper()
	return nsFrame(t, clientMAC, net.HardwareAddr{0x33, 0x33, 0xff, 0, 1, 0}, src, dst, target, hop, slla)
}

func nsFrame(t *testing.T, ethSrc, ethDst net.HardwareAddr, src, dst, target netip.Addr, hop byte, slla net.HardwareAddr) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if slla != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: slla}}
	}
	icmp, err := ndp.MarshalMessageChecksum(ns, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(icmp)))
	ip[6], ip[7] = 58, hop
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	f := ethernet.Frame{Destination: ethDst, Source: ethSrc, EtherType: etherTypeIPv6, Payload: append(ip, icmp...)}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNAReply(t *testing.T) {
	vmac := VirtualMAC(vip6, ModeVMAC)
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	slla := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x42}
	tests := []struct {
		name      string
		frame     []byte
		answer    bool
		dst       netip.Addr
		dstMAC    net.HardwareAddr
		solicited bool
	}{
		{"multicast ns with slla", nsFrameT(t, client6, snm, vip6, 255, slla), true, client6, slla, true},
		{"unicast probe without slla", nsFrameT(t, client6, vip6, vip6, 255, nil), true, client6, clientMAC, true},
		{"dad by another host", nsFrameT(t, netip.IPv6Unspecified(), snm, vip6, 255, nil), true, allNodes, allNodesMAC, false},
		{"hop limit not 255", nsFrameT(t, client6, snm, vip6, 64, slla), false, netip.Addr{}, nil, false},
		{"other target", nsFrameT(t, client6, snm, netip.MustParseAddr("fd77::1"), 255, slla), false, netip.Addr{}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := nsFor(tt.frame, vip6)
			if ok != tt.answer {
				t.Fatalf("nsFor answer = %v, want %v", ok, tt.answer)
			}
			if got := runFilter(t, nsChecks(vip6), tt.frame); got != tt.answer && tt.name != "hop limit not 255" {
				t.Errorf("socket filter keeps = %v, want %v", got, tt.answer)
			}
			if !ok {
				return
			}
			b, err := naReplyFrame(s, ownMAC, vmac, vip6)
			if err != nil {
				t.Fatal(err)
			}
			checkNA(t, b, vmac, tt.dstMAC, tt.dst, tt.solicited)
		})
	}
	t.Run("unsolicited", func(t *testing.T) {
		b, err := unsolicitedNAFrame(ownMAC, vmac, vip6)
		if err != nil {
			t.Fatal(err)
		}
		checkNA(t, b, vmac, allNodesMAC, allNodes, false)
	})
}

func checkNA(t *testing.T, b []byte, vmac, dstMAC net.HardwareAddr, dst netip.Addr, solicited bool) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Source, ownMAC) || !bytes.Equal(f.Destination, dstMAC) || f.EtherType != etherTypeIPv6 {
		t.Fatalf("Ethernet %v -> %v type %v, want %v -> %v", f.Source, f.Destination, f.EtherType, ownMAC, dstMAC)
	}
	ip := f.Payload
	if ip[0]>>4 != 6 || ip[6] != 58 || ip[7] != 255 {
		t.Fatalf("IPv6 header version/next/hop = %d/%d/%d", ip[0]>>4, ip[6], ip[7])
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	gotDst := netip.AddrFrom16([16]byte(ip[24:40]))
	if src != vip6 || gotDst != dst {
		t.Fatalf("IPv6 %v -> %v, want %v -> %v", src, gotDst, vip6, dst)
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	icmp := ip[40 : 40+plen]
	if sum := icmpv6Sum(src, gotDst, icmp); sum != 0xffff && sum != 0 {
		t.Fatalf("ICMPv6 checksum does not verify (folded sum %#x)", sum)
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("message is %T", m)
	}
	if na.TargetAddress != vip6 || na.Solicited != solicited || !na.Override || na.Router {
		t.Fatalf("NA = %+v", na)
	}
	if len(na.Options) != 1 {
		t.Fatalf("NA options = %v", na.Options)
	}
	lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
	if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, vmac) {
		t.Fatalf("NA option = %+v", na.Options[0])
	}
}

// icmpv6Sum is the one's complement sum over the pseudo-header and message;
// a correct checksum makes it 0xffff.
func icmpv6Sum(src, dst netip.Addr, msg []byte) uint16 {
	var b []byte
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, 0, 0, 0, 58)
	b = append(b, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// runFilter runs the socket filter's checks (without the packet-type
// extension, which x/net/bpf's VM does not implement) over frame.
func runFilter(t *testing.T, checks []bpfCheck, frame []byte) bool {
	t.Helper()
	raw, err := dropUnless(1024, checks...)
	if err != nil {
		t.Fatal(err)
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("cannot disassemble filter")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestFiltersAssemble(t *testing.T) {
	if _, err := arpFilter(vip4); err != nil {
		t.Fatal(err)
	}
	if _, err := nsFilter(vip6); err != nil {
		t.Fatal(err)
	}
}
