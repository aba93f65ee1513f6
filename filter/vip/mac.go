package vip

import (
	"crypto/sha256"
	"net"
	"net/netip"
)

// Virtual MAC layout. The first octet carries the mode: 0x02 (locally
// administered unicast) for ModeVMAC, 0x03 (locally administered, group bit
// set) for ModeMulticast. The second octet carries the family: 0xbf for IPv4,
// followed by the four address octets, which is the layout Windows NLB uses
// (02:bf:W:X:Y:Z unicast, 03:bf:W:X:Y:Z multicast) and lets an operator read
// the VIP off a capture; 0xbe for IPv6, followed by the first four octets of
// the SHA-256 of the 16-byte address, since 128 bits do not fit.
//
// ModeIGMP does not use this layout: its MAC is an IP multicast group's
// (GroupMAC), so a Windows node can receive it by joining the group.
//
// The multicast form deliberately avoids 01:00:5e (IPv4 multicast) and 33:33
// (IPv6 multicast): those prefixes are what IP multicast groups map to, so
// IGMP/MLD-snooping switches would confine the frames to group members and
// hosts joining unrelated groups could collide with the VIP.
const (
	macUnicast   = 0x02
	macMulticast = 0x03
	macIPv4      = 0xbf
	macIPv6      = 0xbe
)

// VirtualMAC returns the MAC address the farm advertises for addr in the
// given mode: the layout above for ModeVMAC and ModeMulticast, GroupMAC
// for ModeIGMP. Every node computes the same value from the configuration
// alone, so no coordination is needed. It returns nil for an invalid address
// or mode.
func VirtualMAC(addr netip.Addr, mode Mode) net.HardwareAddr {
	var first byte
	switch mode {
	case ModeVMAC:
		first = macUnicast
	case ModeMulticast:
		first = macMulticast
	case ModeIGMP:
		return GroupMAC(addr)
	default:
		return nil
	}
	addr = addr.Unmap().WithZone("")
	switch {
	case addr.Is4():
		a := addr.As4()
		return net.HardwareAddr{first, macIPv4, a[0], a[1], a[2], a[3]}
	case addr.Is6():
		a := addr.As16()
		h := sha256.Sum256(a[:])
		return net.HardwareAddr{first, macIPv6, h[0], h[1], h[2], h[3]}
	}
	return nil
}

// farmGroup6 is the prefix of the IPv6 groups: ff12:: (transient, link
// scope: the group never needs routing) then "farm" in ASCII, then the
// VIP's last 32 bits, which are also what the group's MAC carries.
var farmGroup6 = [12]byte{0xff, 0x12, 0, 0, 0, 0, 0, 0, 0x66, 0x61, 0x72, 0x6d}

// GroupOf returns the IP multicast group a node joins to receive addr's
// frames in ModeIGMP (and the Windows engine's multicast mode):
// 239.255.Y.Z for an IPv4 VIP W.X.Y.Z, which is Windows NLB's IGMP
// multicast group, so a farm can sit beside (or replace) an NLB cluster
// configured the same way; ff12::6661:726d:AABB:CCDD for an IPv6 VIP
// ending in AA:BB:CC:DD. An IPv4-mapped address gives the IPv4 group. It
// returns the zero Addr for an invalid address. Two VIPs that share their
// last 16 (IPv4) or 32 (IPv6) bits share a group; each node still keeps
// only the frames whose IP destination is one of its VIPs.
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

// GroupMAC returns the Ethernet address of addr's group (GroupOf), the MAC
// ARP/ND answer with in ModeIGMP and the one a router's static ARP or
// neighbour entry for the VIP must name: 01-00-5E-7F-Y-Z for IPv4 (RFC
// 1112: 01-00-5E and the group's low 23 bits), 33-33 and the group's last
// 32 bits for IPv6 (RFC 2464). It is the address the kernel programs into
// the NIC when a socket joins the group. nil for an invalid address.
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

// holderMAC is the address of the farmv<N> device that holds the VIP. In
// ModeVMAC it is the virtual MAC itself (unicast frames for it are stolen by
// the macvlan); in ModeMulticast and ModeIGMP the device only holds the
// address, and a macvlan needs a unicast address, so it takes the ModeVMAC
// form. Either way
// the device never transmits.
func holderMAC(addr netip.Addr) net.HardwareAddr {
	return VirtualMAC(addr, ModeVMAC)
}

// isOurMulticastMAC reports whether mac is one ModeMulticast produces, so a
// cleanup can recognise link-layer memberships a crashed agent left behind.
func isOurMulticastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0] == macMulticast && (mac[1] == macIPv4 || mac[1] == macIPv6)
}
