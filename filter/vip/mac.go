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
// given mode. Every node computes the same value from the configuration
// alone, so no coordination is needed. It returns nil for an invalid address
// or mode.
func VirtualMAC(addr netip.Addr, mode Mode) net.HardwareAddr {
	var first byte
	switch mode {
	case ModeVMAC:
		first = macUnicast
	case ModeMulticast:
		first = macMulticast
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

// holderMAC is the address of the farmv<N> device that holds the VIP. In
// ModeVMAC it is the virtual MAC itself (unicast frames for it are stolen by
// the macvlan); in ModeMulticast the device only holds the address, and a
// macvlan needs a unicast address, so it takes the ModeVMAC form. Either way
// the device never transmits.
func holderMAC(addr netip.Addr) net.HardwareAddr {
	return VirtualMAC(addr, ModeVMAC)
}

// isOurMulticastMAC reports whether mac is one ModeMulticast produces, so a
// cleanup can recognise link-layer memberships a crashed agent left behind.
func isOurMulticastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0] == macMulticast && (mac[1] == macIPv4 || mac[1] == macIPv6)
}
