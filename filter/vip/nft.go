package vip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// nftCreateTable creates the package's table and fails when it already
// exists: a leftover table means a crashed agent, which `farm cleanup`
// (Cleanup) must clear first, rather than two agents sharing one table.
func nftCreateTable() string {
	return "create table netdev " + nftTable + "\n"
}

// nftDeleteTable deletes the table whether or not it exists (nft 1.0.6 has
// no "destroy"; adding first makes the delete always succeed).
func nftDeleteTable() string {
	return "add table netdev " + nftTable + "\ndelete table netdev " + nftTable + "\n"
}

// nftVIPChains returns the chains of VIP number i, installed before its
// holder device comes up:
//   - vip<i>_out: egress on the holder, policy drop. The holder must never
//     transmit: any frame with its address as source (IPv6 DAD, MLD, RS, NA,
//     an ARP reply) teaches the switch where the virtual MAC lives and the
//     switch stops flooding it to the other nodes.
//   - vip<i>_hold: ingress on the holder. In vmac mode it keeps frames sent to
//     the virtual MAC (pkttype host) and drops the broadcast/multicast copies a
//     macvlan also receives, so the holder's stack does not, for example, warn
//     about other nodes' announcements; in multicast mode the holder only
//     holds the address and receives nothing.
//   - vip<i>_mcast (multicast mode): ingress on the parent; frames sent to
//     the multicast MAC are marked as addressed to this host, because TCP
//     discards frames whose link-layer destination is multicast.
//   - vip<i>_mcast (igmp mode): the same, for frames to the group MAC whose
//     IP destination is the VIP only. The group MAC is a real IP multicast
//     group's, which also carries the group's own traffic (the other
//     nodes' IGMPv2/MLDv1 reports are sent to the group address): that
//     must stay multicast, or the kernel's report suppression and any
//     multicast listener would see it as unicast.
func nftVIPChains(i int, holder, parent string, mode Mode, mcast net.HardwareAddr, vip netip.Addr) string {
	var b strings.Builder
	t := "netdev " + nftTable
	fmt.Fprintf(&b, "add chain %s vip%d_out { type filter hook egress device %q priority 0; policy drop; }\n", t, i, holder)
	fmt.Fprintf(&b, "add chain %s vip%d_hold { type filter hook ingress device %q priority 0; policy drop; }\n", t, i, holder)
	if mode == ModeVMAC {
		fmt.Fprintf(&b, "add rule %s vip%d_hold meta pkttype host accept\n", t, i)
	}
	switch mode {
	case ModeMulticast:
		fmt.Fprintf(&b, "add chain %s vip%d_mcast { type filter hook ingress device %q priority 0; policy accept; }\n", t, i, parent)
		fmt.Fprintf(&b, "add rule %s vip%d_mcast ether daddr %s counter meta pkttype set host\n", t, i, mcast)
	case ModeIGMP:
		family := "ip"
		if vip.Is6() {
			family = "ip6"
		}
		fmt.Fprintf(&b, "add chain %s vip%d_mcast { type filter hook ingress device %q priority 0; policy accept; }\n", t, i, parent)
		fmt.Fprintf(&b, "add rule %s vip%d_mcast ether daddr %s %s daddr %s counter meta pkttype set host\n", t, i, mcast, family, vip)
	}
	return b.String()
}
