package vip

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// membership is a socket that holds one IP multicast group membership on
// one interface (ModeIGMP). While it is open the kernel keeps the group's
// MAC in the NIC's filter, reports the membership (IGMP for IPv4, MLD for
// IPv6) when it joins and whenever a querier asks, so snooping switches
// keep delivering the group's frames to this port. Closing it leaves the
// group; so does the agent's death, since the kernel closes its sockets,
// which is what stops a snooping switch from sending a dead node frames
// it would drop anyway.
type membership struct {
	fd    int
	group netip.Addr
}

// joinGroup joins group on the interface with index ifindex, in the
// calling thread's network namespace.
func joinGroup(ifindex int, group netip.Addr) (*membership, error) {
	if !group.IsMulticast() {
		return nil, fmt.Errorf("%s is not a multicast group", group)
	}
	family := unix.AF_INET6
	if group.Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open socket to join %s: %w", group, err)
	}
	if group.Is4() {
		mreq := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifindex)}
		err = unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)
	} else {
		mreq := &unix.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifindex)}
		err = unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("join %s (is IPv4/IPv6 disabled on the interface?): %w", group, err)
	}
	return &membership{fd: fd, group: group}, nil
}

// leave closes the socket, which drops the membership. It is idempotent.
func (m *membership) leave() error {
	if m.fd < 0 {
		return nil
	}
	err := unix.Close(m.fd)
	m.fd = -1
	if err != nil {
		return fmt.Errorf("leave %s: %w", m.group, err)
	}
	return nil
}
