package windivert

import (
	"net"
	"net/netip"

	"github.com/webfarm/farm/filter/vip"
)

// How a VIP's frames reach every Windows node. Windows has no user-space
// way to make a NIC accept an arbitrary extra MAC address (Windows NLB does
// it in its own NDIS driver), which leaves two ways:
//
//   - ModeVMAC, NLB-style unicast: a dedicated cluster NIC takes the
//     virtual MAC as its own address (UnicastMAC: 02-BF-W-X-Y-Z for IPv4
//     W.X.Y.Z, as Windows NLB; filter/vip's form for IPv6). Without NLB's
//     source-MAC masking, every frame that NIC sends carries the virtual
//     MAC as source and the switch learns it, so the node must never send
//     from that NIC (replies and gossip leave by a second NIC), or the
//     switch must not learn (see README.md).
//   - ModeMulticast, NLB-style IGMP multicast: the engine joins the VIP's
//     group (GroupOf: 239.255.Y.Z for IPv4 W.X.Y.Z, as Windows NLB's IGMP
//     mode) on the LAN adapter, so the stack programs the NIC to accept
//     the group's MAC (GroupMAC: 01-00-5E-7F-Y-Z) and sends IGMP reports
//     that let snooping switches deliver it to the members only. The
//     router needs a static ARP entry VIP -> GroupMAC. The NIC keeps its
//     own MAC, so replies never carry a shared one.
//
// filter/vip's multicast form (03-BF-...) is not an IP multicast MAC, so a
// Windows node cannot receive it: a farm mixing Linux and Windows nodes in
// multicast mode needs the Linux side to answer with GroupMAC too. In
// ModeVMAC both kinds of node use the same UnicastMAC.

// UnicastMAC returns the NLB-style unicast virtual MAC of addr
// (02-BF-W-X-Y-Z for IPv4; 02-BE and a hash of the address for IPv6),
// the same as filter/vip's ModeVMAC on Linux nodes.
func UnicastMAC(addr netip.Addr) net.HardwareAddr { return vip.VirtualMAC(addr, vip.ModeVMAC) }

// MulticastMAC returns the NLB-style multicast MAC of addr (03-BF-W-X-Y-Z
// for IPv4), filter/vip's ModeMulticast on Linux nodes. Windows nodes
// cannot receive it (see above); it is here for the mixed-farm check.
func MulticastMAC(addr netip.Addr) net.HardwareAddr {
	return vip.VirtualMAC(addr, vip.ModeMulticast)
}

// farmGroup6 is the prefix of the IPv6 groups: ff12:: (transient, link
// scope) then "farm" in ASCII, then the VIP's last 32 bits.
var farmGroup6 = [12]byte{0xff, 0x12, 0, 0, 0, 0, 0, 0, 0x66, 0x61, 0x72, 0x6d}

// GroupOf returns the multicast group a node joins to receive addr's
// frames in ModeMulticast: 239.255.Y.Z for an IPv4 VIP W.X.Y.Z (Windows
// NLB's IGMP multicast group), ff12::6661:726d:AABB:CCDD for an IPv6 VIP
// ending in AA:BB:CC:DD. It returns the zero Addr for an invalid address.
func GroupOf(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		a := addr.As4()
		return netip.AddrFrom4([4]byte{239, 255, a[2], a[3]})
	case addr.Is6():
		a := addr.As16()
		var g [16]byte
		copy(g[:12], farmGroup6[:])
		copy(g[12:], a[12:])
		return netip.AddrFrom16(g)
	}
	return netip.Addr{}
}

// GroupMAC returns the Ethernet address of addr's group (GroupOf), the
// MAC the router's static ARP or neighbour entry for the VIP must name:
// 01-00-5E-7F-Y-Z for IPv4 (RFC 1112: 01-00-5E and the group's low 23
// bits), 33-33 and the group's last 32 bits for IPv6 (RFC 2464).
func GroupMAC(addr netip.Addr) net.HardwareAddr {
	g := GroupOf(addr)
	switch {
	case g.Is4():
		a := g.As4()
		return net.HardwareAddr{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}
	case g.Is6():
		a := g.As16()
		return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
	}
	return nil
}

// FrameMAC returns the destination MAC of the VIP's frames on the wire in
// the given mode on Windows nodes: UnicastMAC for ModeVMAC, GroupMAC for
// ModeMulticast; nil for an unknown mode.
func FrameMAC(addr netip.Addr, mode vip.Mode) net.HardwareAddr {
	switch mode {
	case vip.ModeVMAC:
		return UnicastMAC(addr)
	case vip.ModeMulticast:
		return GroupMAC(addr)
	}
	return nil
}
