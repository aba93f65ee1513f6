package vip

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// The responders build whole Ethernet frames themselves and send them on a
// packet socket. This is the one thing that keeps the switch flooding: the
// virtual MAC goes in the ARP/ND payload, the node's own MAC in the Ethernet
// source. (arp.Client.Reply cannot be used: it frames with the payload's
// sender hardware address as Ethernet source, which would be the virtual MAC.)

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	zeroMAC     = net.HardwareAddr{0, 0, 0, 0, 0, 0}
)

const (
	etherTypeIPv6  = 0x86dd
	ipv6HeaderLen  = 40
	protoICMPv6    = 58
	ndpHopLimit    = 255
	icmpTypeNS     = 135
	packetOutgoing = 4 // PACKET_OUTGOING, linux/if_packet.h
)

// arpRequestFor parses an Ethernet frame and returns the ARP request in it
// when this node must answer it for vip: an Ethernet/IPv4 request whose
// target is the VIP. Gratuitous requests (sender IP = VIP, as other nodes
// announce) are not answered.
func arpRequestFor(frame []byte, vip netip.Addr) (*arp.Packet, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 || p.Operation != arp.OperationRequest {
		return nil, false
	}
	if p.TargetIP != vip || p.SenderIP == vip {
		return nil, false
	}
	return &p, true
}

// arpReplyFrame answers req: payload "vip is at vmac", Ethernet source own.
func arpReplyFrame(req *arp.Packet, own, vmac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationReply, vmac, vip, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil, err
	}
	return arpFrame(p, req.SenderHardwareAddr, own)
}

// gratuitousARPFrame is an ARP announcement (RFC 5227): a broadcast request
// with sender IP = target IP = vip and sender hardware address vmac, which
// updates every neighbour that already caches the VIP.
func gratuitousARPFrame(own, vmac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, vmac, vip, zeroMAC, vip)
	if err != nil {
		return nil, err
	}
	return arpFrame(p, ethernet.Broadcast, own)
}

func arpFrame(p *arp.Packet, dst, src net.HardwareAddr) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{Destination: dst, Source: src, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// solicitation is what an answer to a neighbour solicitation needs.
type solicitation struct {
	src    netip.Addr       // IPv6 source; unspecified for DAD
	srcMAC net.HardwareAddr // where to send the answer
}

// nsFor parses an Ethernet frame and returns the neighbour solicitation in it
// when this node must answer it for vip (RFC 4861 7.1.1 checks: hop limit
// 255, code 0, target = vip).
func nsFor(frame []byte, vip netip.Addr) (solicitation, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != etherTypeIPv6 {
		return solicitation{}, false
	}
	b := f.Payload
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[7] != ndpHopLimit {
		return solicitation{}, false
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if plen > len(b)-ipv6HeaderLen {
		return solicitation{}, false
	}
	icmp := b[ipv6HeaderLen : ipv6HeaderLen+plen]
	if len(icmp) < 4 || icmp[0] != icmpTypeNS || icmp[1] != 0 {
		return solicitation{}, false
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		return solicitation{}, false
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok || ns.TargetAddress != vip {
		return solicitation{}, false
	}
	s := solicitation{src: netip.AddrFrom16([16]byte(b[8:24])), srcMAC: f.Source}
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source && len(lla.Addr) == 6 {
			s.srcMAC = lla.Addr
		}
	}
	if s.src.IsUnspecified() {
		// DAD by another host: answer all nodes, unsolicited (RFC 4861 7.2.4).
		s.srcMAC = allNodesMAC
	}
	return s, true
}

// naReplyFrame answers s: "vip is at vmac", solicited and override set,
// Ethernet source own.
func naReplyFrame(s solicitation, own, vmac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	if s.src.IsUnspecified() {
		return naFrame(own, vmac, vip, allNodesMAC, allNodes, false)
	}
	return naFrame(own, vmac, vip, s.srcMAC, s.src, true)
}

// unsolicitedNAFrame announces "vip is at vmac" to all nodes, with override
// set so caches holding another address are updated.
func unsolicitedNAFrame(own, vmac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	return naFrame(own, vmac, vip, allNodesMAC, allNodes, false)
}

// naFrame builds Ethernet + IPv6 + ICMPv6 neighbour advertisement. The IPv6
// source is the VIP itself: it is an address of this node and needs no
// link-local address on the parent.
func naFrame(own, vmac net.HardwareAddr, vip netip.Addr, dstMAC net.HardwareAddr, dst netip.Addr, solicited bool) ([]byte, error) {
	if !vip.Is6() || vip.Is4In6() || !dst.Is6() {
		return nil, errors.New("neighbour advertisement needs IPv6 addresses")
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: vip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: vmac}},
	}
	icmp, err := ndp.MarshalMessageChecksum(na, vip, dst)
	if err != nil {
		return nil, err
	}
	ip := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(icmp))
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = protoICMPv6
	ip[7] = ndpHopLimit
	s, d := vip.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	ip = append(ip, icmp...)
	f := ethernet.Frame{Destination: dstMAC, Source: own, EtherType: etherTypeIPv6, Payload: ip}
	return f.MarshalBinary()
}

// bpfCheck is one test of a socket filter: load a value, drop the frame when
// the jump condition against val holds.
type bpfCheck struct {
	load   bpf.Instruction
	dropIf bpf.JumpTest
	val    uint32
}

// dropUnless assembles checks into a program that keeps (up to snap bytes
// of) frames passing every check, so the kernel wakes a responder only for
// the requests it answers instead of for every frame on the interface.
func dropUnless(snap uint32, checks ...bpfCheck) ([]bpf.RawInstruction, error) {
	n := len(checks)
	prog := make([]bpf.Instruction, 0, 2*n+2)
	for i, c := range checks {
		skip := uint8(2*(n-i) - 1) // to the final "drop"
		prog = append(prog, c.load, bpf.JumpIf{Cond: c.dropIf, Val: c.val, SkipTrue: skip})
	}
	prog = append(prog, bpf.RetConstant{Val: snap}, bpf.RetConstant{Val: 0})
	return bpf.Assemble(prog)
}

var notOutgoing = bpfCheck{bpf.LoadExtension{Num: bpf.ExtType}, bpf.JumpEqual, packetOutgoing}

// arpFilter keeps received ARP requests whose target IP is vip.
func arpFilter(vip netip.Addr) ([]bpf.RawInstruction, error) {
	return dropUnless(256, append([]bpfCheck{notOutgoing}, arpChecks(vip)...)...)
}

// nsFilter keeps received neighbour solicitations (without extension
// headers, as RFC 4861 senders emit them) whose target is vip.
func nsFilter(vip netip.Addr) ([]bpf.RawInstruction, error) {
	return dropUnless(1024, append([]bpfCheck{notOutgoing}, nsChecks(vip)...)...)
}

// arpChecks match an Ethernet ARP request for vip.
func arpChecks(vip netip.Addr) []bpfCheck {
	a := vip.As4()
	return []bpfCheck{
		{bpf.LoadAbsolute{Off: 12, Size: 2}, bpf.JumpNotEqual, uint32(ethernet.EtherTypeARP)},
		{bpf.LoadAbsolute{Off: 20, Size: 2}, bpf.JumpNotEqual, uint32(arp.OperationRequest)},
		{bpf.LoadAbsolute{Off: 38, Size: 4}, bpf.JumpNotEqual, binary.BigEndian.Uint32(a[:])},
	}
}

// nsChecks match an Ethernet/IPv6 neighbour solicitation for vip.
func nsChecks(vip netip.Addr) []bpfCheck {
	a := vip.As16()
	const tgt = 14 + ipv6HeaderLen + 8 // Ethernet, IPv6, ICMPv6 type/code/sum/reserved
	return []bpfCheck{
		{bpf.LoadAbsolute{Off: 12, Size: 2}, bpf.JumpNotEqual, etherTypeIPv6},
		{bpf.LoadAbsolute{Off: 14 + 6, Size: 1}, bpf.JumpNotEqual, protoICMPv6},
		{bpf.LoadAbsolute{Off: 14 + ipv6HeaderLen, Size: 1}, bpf.JumpNotEqual, icmpTypeNS},
		{bpf.LoadAbsolute{Off: tgt, Size: 4}, bpf.JumpNotEqual, binary.BigEndian.Uint32(a[0:4])},
		{bpf.LoadAbsolute{Off: tgt + 4, Size: 4}, bpf.JumpNotEqual, binary.BigEndian.Uint32(a[4:8])},
		{bpf.LoadAbsolute{Off: tgt + 8, Size: 4}, bpf.JumpNotEqual, binary.BigEndian.Uint32(a[8:12])},
		{bpf.LoadAbsolute{Off: tgt + 12, Size: 4}, bpf.JumpNotEqual, binary.BigEndian.Uint32(a[12:16])},
	}
}
