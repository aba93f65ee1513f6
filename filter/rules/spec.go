// Package rules generates and installs the kernel rules of the farm's data
// path on Linux: an nftables table that decides established flows by their
// conntrack mark, and an iptables mangle chain that queues the first packet
// of each new flow to the NFQUEUE engine (this kernel has no nft queue
// statement). Generation is pure and golden-tested; installation runs the
// nft and iptables-restore tools.
//
// What the rules do, per VIP and balanced protocol/port:
//   - a packet of a flow this node accepted (conntrack mark Mark(self)) is
//     accepted in the kernel;
//   - a packet of a flow marked by another node id is dropped;
//   - TCP: a new flow must start with a bare SYN, and any other packet
//     without our mark is dropped (without this, non-owners answer the
//     client's FIN or data with RST and kill the owner's connection);
//   - UDP: the same "not new and not ours: drop". A UDP flow owned by
//     another node never gets a conntrack entry here (its first packet is
//     dropped by our verdict, so the entry is never confirmed): every one of
//     its packets is "new" and is queued and dropped again, which is right;
//   - the first packet (TCP SYN, new UDP) is queued; the engine accepts it
//     with the packet mark Mark(self) or drops it, and the copy chain copies
//     the packet mark into the conntrack mark (the kernel ignores a
//     conntrack mark given in the verdict);
//   - during a reset window (SetReset, after this node took over a dead
//     node's buckets), a new TCP packet that is not a bare SYN and has no
//     farm mark is queued too, instead of dropped: the engine resets the
//     dead node's orphaned flows (filter.Verdict Reset: accepted without a
//     mark, the local stack answers with RST) and drops the rest. The
//     window is bounded because it sends the other nodes' mid-flow packets
//     through user space (see package filter).
//
// Traffic to a VIP on ports no rule covers is left alone: every node that
// holds the VIP accepts it (ICMP, ping, and IPv6 neighbour discovery, which
// is untracked and must never be dropped, are in that case by
// construction). Balance every service the VIP offers.
//
// The queue rules never let packets bypass the queue: a node whose engine is gone
// must drop new flows, not accept them, or it would answer every client.
package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
)

// Names of what this package creates; Cleanup removes exactly these.
const (
	// NFTTable is the nftables table name, in families ip and ip6.
	NFTTable = "farm"
	// IPTChain is the iptables/ip6tables mangle chain, jumped to from
	// PREROUTING.
	IPTChain = "FARM"
)

// Names of the kernel engine's (filter/kernel) nftables tables, in families
// ip and ip6. Each engine's set-up removes the other's leftovers, so a node
// that switches engines after a crash does not run both.
const (
	// GuardTable is the kernel engine's persistent table: it passes this
	// node's flows and drops the rest of the balanced traffic. A crashed
	// agent leaves it behind on purpose (fail closed); Remove, Cleanup and
	// Install delete it.
	GuardTable = "farm_guard"
	// OwnedTable is the kernel engine's owner-flag table, which accepts new
	// flows: the kernel deletes it when the engine's netlink socket closes
	// (the agent ends or dies) and refuses changes from any other socket,
	// so nothing in this package touches it and nothing is ever left of it.
	OwnedTable = "farm_owned"
)

// Hook priorities in prerouting, around conntrack (-200) and iptables
// mangle (-150): decide by mark before the queue, copy the verdict's mark
// after it.
const (
	prioPre  = -160
	prioCopy = -140
)

// Spec is everything the kernel rules depend on.
type Spec struct {
	// Self is this node's id (1..250); its flows carry filter.Mark(Self).
	Self uint8
	// VIPs are the farm's virtual addresses (IPv4 and/or IPv6).
	VIPs []netip.Addr
	// Rules are the balanced protocols and ports.
	Rules []filter.Rule
	// Queue is the first NFQUEUE number.
	Queue uint16
	// Queues is how many queues (Queue..Queue+Queues-1) share the new
	// flows; 0 means 1.
	Queues uint16
}

// Validate checks the spec before anything is installed, so a bad config
// fails with a message rather than a half-installed rule set.
func (s Spec) Validate() error {
	var errs []error
	if s.Self == 0 || s.Self > table.MaxID {
		errs = append(errs, fmt.Errorf("node id %d: must be 1..%d", s.Self, table.MaxID))
	}
	if len(s.VIPs) == 0 {
		errs = append(errs, errors.New("no VIP: give at least one [[vip]] address"))
	}
	for _, v := range s.VIPs {
		if !v.IsValid() || v.IsUnspecified() || v.IsMulticast() || v.IsLoopback() || v.Zone() != "" {
			errs = append(errs, fmt.Errorf("vip %s: not a usable unicast address", v))
		}
	}
	if len(s.Rules) == 0 {
		errs = append(errs, errors.New("no rule: give at least one [[rule]] (proto, ports)"))
	}
	for i, r := range s.Rules {
		if r.Proto != filter.ProtoTCP && r.Proto != filter.ProtoUDP {
			errs = append(errs, fmt.Errorf("rule %d: proto %d: must be tcp (6) or udp (17)", i+1, r.Proto))
		}
		if r.Ports.Empty() {
			errs = append(errs, fmt.Errorf("rule %d: no ports", i+1))
		}
	}
	if int(s.Queue)+int(s.queues())-1 > 65535 {
		errs = append(errs, fmt.Errorf("queues %d..%d: beyond 65535", s.Queue, int(s.Queue)+int(s.queues())-1))
	}
	return errors.Join(errs...)
}

func (s Spec) queues() uint16 { return max(s.Queues, 1) }

// vips returns the spec's VIPs of one family, unmapped, sorted and without
// duplicates, so generated text is stable.
func (s Spec) vips(v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, v := range s.VIPs {
		v = v.Unmap()
		if v.IsValid() && v.Is6() == v6 {
			out = append(out, v.WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// ports returns the union of the balanced ports of proto over all rules:
// the kernel treats every rule of one protocol alike (the affinity matters
// only to the engine), so one set per protocol is enough.
func (s Spec) ports(proto uint8) *filter.PortSet {
	var sets []*filter.PortSet
	for _, r := range s.Rules {
		if r.Proto == proto {
			sets = append(sets, r.Ports)
		}
	}
	return filter.Union(sets...)
}

// protos lists the protocols with balanced ports, in a fixed order.
func (s Spec) protos() []uint8 {
	var out []uint8
	for _, p := range []uint8{filter.ProtoTCP, filter.ProtoUDP} {
		if !s.ports(p).Empty() {
			out = append(out, p)
		}
	}
	return out
}
