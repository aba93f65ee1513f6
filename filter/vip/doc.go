// Package vip makes a node receive every frame sent to the farm's virtual
// IPs and answers ARP and IPv6 neighbour discovery for them, without ever
// letting a switch learn the virtual MAC.
//
// Every node answers "VIP is at <virtual MAC>" with its own MAC as Ethernet
// source. In vmac mode the virtual MAC is a locally administered unicast
// address that never appears as a source on the wire, so learning switches
// keep flooding frames for it to every port; in multicast mode it is a
// multicast MAC, flooded by nature; in igmp mode it is the MAC of an IP
// multicast group every node joins (Windows NLB's IGMP mode, and the
// Windows engine's multicast mode), so snooping switches deliver it to the
// members. Either way each node's filter then keeps only its share of the
// clients.
//
// On Linux the VIP lives on a macvlan "holder" device farmv<N> per VIP, never
// on the parent interface, in every mode:
//   - vmac mode: the holder's address is the virtual MAC, so the frames land
//     on it; multicast mode: the parent listens to the multicast MAC and an
//     nftables ingress rule marks those frames as addressed to the host
//     (TCP drops frames whose link-layer destination is multicast); igmp
//     mode: a socket joins the group on the parent (the kernel then listens
//     to the group's MAC and sends IGMP/MLD reports) and the same kind of
//     rule marks the frames whose IP destination is the VIP.
//   - The holder is muted before it comes up: nftables netdev egress chain
//     with policy drop, arp off, no IPv6 link-local address. One frame from
//     it would teach the switch the virtual MAC and stop the flooding.
//   - With the VIP off the parent, arp_ignore=1 keeps the parent's kernel
//     from answering ARP for it with its own MAC (arp_ignore=1 still answers
//     for addresses on the receiving interface itself), arp_announce=2 keeps
//     it from using the VIP as the sender of its own ARP requests, and the
//     IPv6 stack neither answers neighbour solicitations for it on the
//     parent nor uses it as the source of its own solicitations (both would
//     teach clients the node's own MAC for the VIP).
//
// The ARP/ND responders use packet sockets on the parent, so they write the
// Ethernet header themselves. Cleanup removes what a crashed agent left,
// recognised by name (farmv<N>, table netdev farm_vip, static 03:bf/03:be
// multicast entries).
package vip
