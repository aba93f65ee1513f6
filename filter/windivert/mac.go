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
// Windows node cannot receive it: in a farm mixing Linux and Windows nodes
// the Linux nodes run filter/vip's ModeIGMP, which answers ARP/ND with
// GroupMAC and joins GroupOf, the same group and MAC as this engine's
// ModeMulticast (both functions live in filter/vip so the two sides cannot
// drift apart). In ModeVMAC both kinds of node use the same UnicastMAC.

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

// GroupOf returns the multicast group a node joins to receive addr's
// frames in ModeMulticast: 239.255.Y.Z for an IPv4 VIP W.X.Y.Z (Windows
// NLB's IGMP multicast group), ff12::6661:726d:AABB:CCDD for an IPv6 VIP
// ending in AA:BB:CC:DD. It is filter/vip's GroupOf, the group Linux
// nodes join in ModeIGMP, so both kinds of node join the same group.
func GroupOf(addr netip.Addr) netip.Addr { return vip.GroupOf(addr) }

// GroupMAC returns the Ethernet address of addr's group (GroupOf), the
// MAC the router's static ARP or neighbour entry for the VIP must name:
// 01-00-5E-7F-Y-Z for IPv4, 33-33 and the group's last 32 bits for IPv6.
// It is filter/vip's GroupMAC, what Linux nodes answer ARP/ND with in
// ModeIGMP.
func GroupMAC(addr netip.Addr) net.HardwareAddr { return vip.GroupMAC(addr) }

// FrameMAC returns the destination MAC of the VIP's frames on the wire in
// the given mode on Windows nodes: UnicastMAC for ModeVMAC, GroupMAC for
// ModeMulticast (and for ModeIGMP, Linux's name for the same frames); nil
// for an unknown mode.
func FrameMAC(addr netip.Addr, mode vip.Mode) net.HardwareAddr {
	switch mode {
	case vip.ModeVMAC:
		return UnicastMAC(addr)
	case vip.ModeMulticast, vip.ModeIGMP:
		return GroupMAC(addr)
	}
	return nil
}
