package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

// Registers. Every match loads into NFT_REG_1 (the 4-byte NFT_REG32_00
// and the three after it); a client key starts there too, and an IP-port
// key's port goes in the 4-byte register right after the address, where
// nft puts the second field of a concatenation. The bucket is left in
// NFT_REG_1: the hash reads its key before it writes.
const (
	reg        = unix.NFT_REG_1
	regPort4   = unix.NFT_REG32_01 // after a 4-byte IPv4 address
	regPort6   = unix.NFT_REG32_04 // after a 16-byte IPv6 address
	tcpFlagsAt = 13                // offset of the flags byte in the TCP header
	// tcpFlagMask is fin|syn|rst|ack: a bare SYN has only syn of these.
	tcpFlagMask = 0x17
	tcpFlagSYN  = 0x02
)

// resetMark is the packet mark of orphaned packets the owned table passes
// unmarked in conntrack for a reset: tagged as the farm's, with a low byte
// that is never a node id (1..250).
const resetMark = filter.MarkBase | 0xff

// Hook priorities in prerouting. Before conntrack (-200), at the raw
// priority (after defragmentation, -400), the owned table's chain "raw"
// drops other nodes' packets; after conntrack its chain "pre" decides new
// flows, then the guard drops what nothing took.
const (
	prioRaw   = -300
	prioOwned = -160
	prioGuard = -140
)

// vipTCPTimeout names the owned table's conntrack timeout policy of this
// node's TCP flows to a VIP, and timeWaitSeconds is its TIME_WAIT (the
// kernel's default is 120 s). Under Connection: close load a node's
// entries are nearly all in TIME_WAIT: at 120 s a node held 100 k+ of them
// in the bench and conntrack lookups and dumps (drains, status) grew with
// them; at 5 s it held 6-8 k. The endpoints keep their own TIME_WAIT in the
// TCP stack; the conntrack entry only has to outlive the last packets of
// the close. The other states keep the host's defaults (the policy sets
// only TIME_WAIT and the kernel fills the rest from its sysctls).
const (
	vipTCPTimeout   = "vip_tcp"
	timeWaitSeconds = 5
)

// objCtTimeout is NFT_OBJECT_CT_TIMEOUT; ctaTimeoutTCPTimeWait is
// CTA_TIMEOUT_TCP_TIME_WAIT, the policy attribute of the TIME_WAIT state.
const (
	objCtTimeout          = 7
	ctaTimeoutTCPTimeWait = 7
)

// Names of the bucket sets in OwnedTable ("reset" is an nft keyword:
// a set of that name could not be listed by name).
const (
	ownedSet    = "owned"
	takeoverSet = "takeover"
	mineSet     = "mine"
)

// family is one nftables address family the engine installs tables in.
type family struct {
	name     string // "ip" or "ip6", for messages
	family   nftables.TableFamily
	addrType nftables.SetDatatype
	saddrAt  uint32 // offset of the source address in the IP header
	daddrAt  uint32
	addrLen  uint32
	netLen   uint32 // key bytes of AffinityNetwork: /24 or /64
	portReg  uint32
	nfproto  uint16 // NFPROTO_IPV4 or NFPROTO_IPV6
}

var (
	familyIPv4 = family{name: "ip", family: nftables.TableFamilyIPv4, addrType: nftables.TypeIPAddr,
		saddrAt: 12, daddrAt: 16, addrLen: 4, netLen: 3, portReg: regPort4, nfproto: unix.NFPROTO_IPV4}
	familyIPv6 = family{name: "ip6", family: nftables.TableFamilyIPv6, addrType: nftables.TypeIP6Addr,
		saddrAt: 8, daddrAt: 24, addrLen: 16, netLen: 8, portReg: regPort6, nfproto: unix.NFPROTO_IPV6}
)

// vips returns the spec's VIPs of family f, unmapped, sorted, without
// duplicates.
func (f family) vips(s rules.Spec) []netip.Addr {
	var out []netip.Addr
	for _, v := range s.VIPs {
		v = v.Unmap().WithZone("")
		if v.IsValid() && v.Is6() == (f.family == nftables.TableFamilyIPv6) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// bucketExprs leaves in reg the bucket of the packet's client under aff,
// as filter.BucketOf computes it: the key bytes its doc lists, loaded from
// the packet, then nft's jhash with the farm seed, scaled to 4096 buckets.
// A payload load zeroes the rest of its last register, which gives the IP-
// port key its two zero bytes, as in nft's own concatenations.
func (f family) bucketExprs(aff filter.Affinity) []expr.Any {
	n := f.addrLen
	if aff == filter.AffinityNetwork {
		n = f.netLen
	}
	ex := []expr.Any{&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrAt, Len: n}}
	if aff == filter.AffinityIPPort {
		ex = append(ex, &expr.Payload{DestRegister: f.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
		n += 4
	}
	return append(ex, &expr.Hash{SourceRegister: reg, DestRegister: reg, Length: n,
		Modulus: table.Buckets, Seed: filter.BucketSeed, Type: expr.HashTypeJenkins})
}

func native32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// Small expression sequences, each loading into reg and testing it.

func ctState(op expr.CmpOp, bit uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Key: expr.CtKeySTATE, Register: reg}, &expr.Cmp{Op: op, Register: reg, Data: native32(bit)}}
}

func ctMarkIs(mark uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Key: expr.CtKeyMARK, Register: reg}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: native32(mark)}}
}

func metaMarkIs(mark uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: reg}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: native32(mark)}}
}

func l4proto(p uint8) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{p}}}
}

// daddrIs matches packets to a.
func daddrIs(f family, a netip.Addr) []expr.Any { return daddrCmp(f, expr.CmpOpEq, a) }

// daddrCmp compares the packet's destination address with a.
func daddrCmp(f family, op expr.CmpOp, a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrAt, Len: f.addrLen},
		&expr.Cmp{Op: op, Register: reg, Data: a.AsSlice()},
	}
}

// objCounter is NFT_OBJECT_COUNTER, the type of a named counter.
const objCounter = 1

// seenCounter names the counter of new flows to spec.VIPs[i].
func seenCounter(i int) string { return fmt.Sprintf("seen%d", i) }

// vipMatch returns a function that builds the match of packets to one of
// vips (with invert, to none of them) for rules in t. Every packet to a
// VIP, on every node, is tested against the VIPs up to three times, so one
// VIP (the common farm) is a compare; more are a lookup in a constant set
// named "vips" declared in t on first use.
func (in installer) vipMatch(t *nftables.Table, vips []netip.Addr) func(invert bool) ([]expr.Any, error) {
	var set *nftables.Set
	return func(invert bool) ([]expr.Any, error) {
		if len(vips) == 1 {
			op := expr.CmpOpEq
			if invert {
				op = expr.CmpOpNeq
			}
			return daddrCmp(in.f, op, vips[0]), nil
		}
		if set == nil {
			set = &nftables.Set{Table: t, Name: "vips", KeyType: in.f.addrType, Constant: true}
			if err := in.c.AddSet(set, addrElems(vips)); err != nil {
				return nil, fmt.Errorf("%s %s: set vips: %w", in.f.name, t.Name, err)
			}
		}
		return []expr.Any{
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: in.f.daddrAt, Len: in.f.addrLen},
			&expr.Lookup{SourceRegister: reg, SetName: set.Name, SetID: set.ID, Invert: invert},
		}, nil
	}
}

// dportMatch returns the match of a destination port in ports for a rule
// in t: a compare for one port, a range for one range (the usual [[rule]]),
// else a lookup in a constant interval set of that name, declared in t.
func (in installer) dportMatch(t *nftables.Table, name string, ports *filter.PortSet) ([]expr.Any, error) {
	load := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	if rs := ports.Ranges(); len(rs) == 1 {
		if rs[0].Lo == rs[0].Hi {
			return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: be16(rs[0].Lo)}}, nil
		}
		return []expr.Any{load, &expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: be16(rs[0].Lo), ToData: be16(rs[0].Hi)}}, nil
	}
	ps := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeInetService, Interval: true, Constant: true}
	if err := in.c.AddSet(ps, portElems(ports)); err != nil {
		return nil, fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, name, err)
	}
	return []expr.Any{load, &expr.Lookup{SourceRegister: reg, SetName: ps.Name, SetID: ps.ID}}, nil
}

// bareSYN matches (eq) or rejects (neq) a TCP segment whose only flag
// among fin, syn, rst and ack is syn.
func bareSYN(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsAt, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpFlagMask}, Xor: []byte{0}},
		&expr.Cmp{Op: op, Register: reg, Data: []byte{tcpFlagSYN}},
	}
}

func inSet(s *nftables.Set) expr.Any {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID}
}

func notInSet(s *nftables.Set) expr.Any {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: true}
}

func setCtMark(mark uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg, Data: native32(mark)}, &expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true}}
}

func setMetaMark(mark uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg, Data: native32(mark)}, &expr.Meta{Key: expr.MetaKeyMARK, Register: reg, SourceRegister: true}}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func goTo(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// rule concatenates expression sequences into one rule.
func rule(t *nftables.Table, c *nftables.Chain, comment string, parts ...[]expr.Any) *nftables.Rule {
	var ex []expr.Any
	for _, p := range parts {
		ex = append(ex, p...)
	}
	return &nftables.Rule{Table: t, Chain: c, Exprs: ex, UserData: userdata.AppendString(nil, userdata.TypeComment, comment)}
}

func one(e expr.Any) []expr.Any { return []expr.Any{e} }

// Set element lists.

func addrElems(vips []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, len(vips))
	for i, v := range vips {
		out[i] = nftables.SetElement{Key: v.AsSlice()}
	}
	return out
}

// portElems writes ports as an interval set the way nft does: each range
// is a start and an end one past it, the range below the first start is
// closed explicitly, and a range reaching 65535 has no end element.
func portElems(ps *filter.PortSet) []nftables.SetElement {
	rs := ps.Ranges()
	var out []nftables.SetElement
	if len(rs) > 0 && rs[0].Lo > 0 {
		out = append(out, nftables.SetElement{Key: be16(0), IntervalEnd: true})
	}
	for _, r := range rs {
		out = append(out, nftables.SetElement{Key: be16(r.Lo)})
		if r.Hi < 65535 {
			out = append(out, nftables.SetElement{Key: be16(r.Hi + 1), IntervalEnd: true})
		}
	}
	return out
}

// bucketElems returns the set elements of buckets: the hash expression
// leaves a bucket in its register as a host-order 32-bit number.
func bucketElems(buckets []uint16) []nftables.SetElement {
	out := make([]nftables.SetElement, len(buckets))
	for i, b := range buckets {
		out[i] = nftables.SetElement{Key: native32(uint32(b))}
	}
	return out
}

// bucketSet returns the declaration of a set of buckets in t. Host byte
// order, as the hash leaves them, so nft lists bucket 5 as 0x00000005.
//
// Two-byte keys would let the kernel back the sets with a bitmap instead of
// a hash table (measured: 2.2 us less nftables work per Connection: close
// request in the 3-node lab; a lookup reads only the key's first bytes of
// the register, the bucket itself on a little-endian host). But with the
// bitmap backend a takeover on Linux 6.18 left some of the new owner's
// buckets unanswered (TestWitness: 5-16 of 64 new connections failed after
// web1 took web2's buckets, in 4 runs of 6; 0 in 7 runs with 4-byte keys).
// The cause is not known: a flush and refill, a duplicate add and a delete
// and re-add in one transaction all behaved on a bitmap set tried by hand
// with nft. So the sets keep 4-byte keys.
func bucketSet(t *nftables.Table, name, comment string) *nftables.Set {
	return &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian, Comment: comment}
}

// installer queues the messages that install one family's tables.
type installer struct {
	c    *nftables.Conn
	spec rules.Spec
	f    family
	sw   *switchObjs // filled by owned: the planned switch's sets and chains
}

// guard queues the replacement of the family's GuardTable: deleted (if
// present) and recreated in the same transaction.
func (in installer) guard(vips []netip.Addr) error {
	t := &nftables.Table{Name: rules.GuardTable, Family: in.f.family}
	in.c.AddTable(t)
	in.c.DelTable(t)
	in.c.AddTable(t)
	notVIP, err := in.vipMatch(t, vips)(true)
	if err != nil {
		return err
	}
	accept := nftables.ChainPolicyAccept
	ch := in.c.AddChain(&nftables.Chain{Name: "guard", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioGuard), Policy: &accept})
	mine := filter.Mark(in.spec.Self)
	in.c.AddRule(rule(t, ch, "flows of this node (established, and new ones farm_owned took)", ctMarkIs(mine), one(verdict(expr.VerdictAccept))))
	in.c.AddRule(rule(t, ch, "not to a VIP: not ours to decide", notVIP, one(verdict(expr.VerdictAccept))))
	in.c.AddRule(rule(t, ch, "orphans farm_owned passed: the local stack resets them", metaMarkIs(resetMark), one(verdict(expr.VerdictAccept))))
	for _, p := range []uint8{filter.ProtoTCP, filter.ProtoUDP} {
		var sets []*filter.PortSet
		for _, r := range in.spec.Rules {
			if r.Proto == p {
				sets = append(sets, r.Ports)
			}
		}
		ports := filter.Union(sets...)
		if ports.Empty() {
			continue
		}
		name := filter.ProtoName(p)
		port, err := in.dportMatch(t, name+"_ports", ports)
		if err != nil {
			return err
		}
		in.c.AddRule(rule(t, ch, "balanced "+name+" that nothing took: other nodes' flows, buckets not ours, invalid",
			l4proto(p), port, one(verdict(expr.VerdictDrop))))
	}
	return nil
}

// ownedSets are the bucket sets of one family's OwnedTable, which Apply
// refills.
type ownedSets struct {
	owned, reset, mine *nftables.Set
}

// owned queues the contents of the family's OwnedTable (created before,
// with the owner flag and the conntrack timeout policy vipTCPTimeout, on
// the engine's socket), with empty bucket sets, and returns the sets.
//
// Chain "raw" (before conntrack), for packets to a VIP on a balanced port
// (the first rule covering the port decides, as in "pre"), counts the new
// flows for the frame-delivery self-test and drops the packets whose
// bucket is not in "mine" (see holdings: owned, or possibly holding a flow
// of this node). Everything else passes untouched.
// Chain "pre" (after conntrack) decides new flows as the package doc says.
func (in installer) owned(vips []netip.Addr) (ownedSets, error) {
	var sets ownedSets
	t := &nftables.Table{Name: rules.OwnedTable, Family: in.f.family}
	vipMatch := in.vipMatch(t, vips)
	notVIP, err := vipMatch(true)
	if err != nil {
		return sets, err
	}
	sets.owned = bucketSet(t, ownedSet, "buckets this node answers (jhash ... mod 4096 seed 0x6661726d)")
	sets.reset = bucketSet(t, takeoverSet, "buckets taken over whose orphaned flows are reset (reset window)")
	sets.mine = bucketSet(t, mineSet, "owned buckets and lost ones that may still hold a flow of this node: the rest is dropped before conntrack")
	for _, s := range []*nftables.Set{sets.owned, sets.reset, sets.mine} {
		if err := in.c.AddSet(s, nil); err != nil {
			return sets, fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, s.Name, err)
		}
	}
	if err := in.switchSets(t); err != nil {
		return sets, err
	}
	accept := nftables.ChainPolicyAccept
	raw := in.c.AddChain(&nftables.Chain{Name: "raw", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioRaw), Policy: &accept})
	in.c.AddRule(rule(t, raw, "not to a VIP: untouched", notVIP, one(verdict(expr.VerdictAccept))))
	// Chain "seen" counts the new flows to each VIP, whoever owns them, for
	// the farm's frame-delivery self-test (every node should see all of
	// them): the raw chains jump to it with the bare SYNs and the UDP
	// datagrams of balanced ports (before conntrack a new UDP flow cannot
	// be told from an old one; every node sees the same datagrams, so the
	// nodes' counts still compare). Packets of established TCP flows skip
	// it after one test of their flags.
	seen := in.c.AddChain(&nftables.Chain{Name: "seen", Table: t})
	for i, v := range in.spec.VIPs {
		v = v.Unmap()
		if v.Is6() != (in.f.family == nftables.TableFamilyIPv6) {
			continue
		}
		name := seenCounter(i)
		in.c.AddObj(&nftables.CounterObj{Table: t, Name: name})
		in.c.AddRule(rule(t, seen, "a new flow to "+v.String(),
			daddrIs(in.f, v), one(&expr.Objref{Type: objCounter, Name: name}), one(verdict(expr.VerdictReturn))))
	}
	pre := in.c.AddChain(&nftables.Chain{Name: "pre", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioOwned), Policy: &accept})
	in.c.AddRule(rule(t, pre, "only new flows are decided here", ctState(expr.CmpOpNeq, expr.CtStateBitNEW), one(verdict(expr.VerdictAccept))))
	if notVIP, err = vipMatch(true); err != nil {
		return sets, err
	}
	in.c.AddRule(rule(t, pre, "not to a VIP", notVIP, one(verdict(expr.VerdictAccept))))
	mine := filter.Mark(in.spec.Self)
	for i, r := range in.spec.Rules {
		name := fmt.Sprintf("rule%d", i+1)
		proto := filter.ProtoName(r.Proto)
		port, err := in.dportMatch(t, name+"_ports", r.Ports)
		if err != nil {
			return sets, err
		}
		title := fmt.Sprintf("[[rule]] %d: %s %s, affinity %s", i+1, proto, r.Ports, r.Affinity)
		bucket := in.f.bucketExprs(r.Affinity)

		rawCh := in.c.AddChain(&nftables.Chain{Name: "raw_" + name, Table: t})
		in.c.AddRule(rule(t, raw, title, l4proto(r.Proto), port, one(goTo(rawCh.Name))))
		if r.Proto == filter.ProtoTCP {
			in.c.AddRule(rule(t, rawCh, "a bare SYN: counted", bareSYN(expr.CmpOpEq), one(jump(seen.Name))))
		} else {
			in.c.AddRule(rule(t, rawCh, "a datagram: counted", one(jump(seen.Name))))
		}
		in.c.AddRule(rule(t, rawCh, "a bucket neither owned nor holding a flow of this node: another node's packet, never seen by conntrack here",
			bucket, one(notInSet(sets.mine)), one(verdict(expr.VerdictDrop))))

		ch := in.c.AddChain(&nftables.Chain{Name: name, Table: t})
		// goto: a port of several rules is decided by the first, as filter.Decider does.
		in.c.AddRule(rule(t, pre, title, l4proto(r.Proto), port, one(goTo(name))))
		switch r.Proto {
		case filter.ProtoTCP:
			in.c.AddRule(rule(t, ch, "a bare SYN in a bucket this node owns: this node's flow, with the short TIME_WAIT",
				l4proto(r.Proto), bareSYN(expr.CmpOpEq), bucket, one(inSet(sets.owned)),
				one(&expr.Objref{Type: objCtTimeout, Name: vipTCPTimeout}), setCtMark(mine), one(verdict(expr.VerdictAccept))))
			in.c.AddRule(in.plannedChain(t, ch, r.Affinity, true, append(l4proto(r.Proto), bareSYN(expr.CmpOpEq)...)))
			in.c.AddRule(rule(t, ch, "reset window: an orphan in a bucket taken over, passed without a conntrack mark",
				l4proto(r.Proto), bareSYN(expr.CmpOpNeq), bucket, one(inSet(sets.reset)), setMetaMark(resetMark), one(verdict(expr.VerdictAccept))))
		default:
			in.c.AddRule(rule(t, ch, "a new flow in a bucket this node owns: this node's flow",
				l4proto(r.Proto), bucket, one(inSet(sets.owned)), setCtMark(mine), one(verdict(expr.VerdictAccept))))
			in.c.AddRule(in.plannedChain(t, ch, r.Affinity, false, l4proto(r.Proto)))
		}
	}
	return sets, nil
}

// ctTimeoutMsg is the NEWOBJ message of the family's conntrack timeout
// policy vipTCPTimeout in OwnedTable: TCP, TIME_WAIT timeWaitSeconds, the
// other states the kernel's defaults. google/nftables v0.3.0 has
// expr.CtTimeout, but it sends a value for every state (libnftnl's
// defaults: ESTABLISHED 12 h instead of the kernel's 5 days, and the host's
// sysctls ignored) and merges them into a package-level map, a data race
// between two connections; so the message is built here. It goes in the
// batch that creates the table.
func ctTimeoutMsg(f family) (netlink.Message, error) {
	policy, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: ctaTimeoutTCPTimeWait, Data: binary.BigEndian.AppendUint32(nil, timeWaitSeconds)},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: expr.NFTA_CT_TIMEOUT_L3PROTO, Data: binary.BigEndian.AppendUint16(nil, f.nfproto)},
		{Type: expr.NFTA_CT_TIMEOUT_L4PROTO, Data: []byte{unix.IPPROTO_TCP}},
		{Type: unix.NLA_F_NESTED | expr.NFTA_CT_TIMEOUT_DATA, Data: policy},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_OBJ_TABLE, Data: []byte(rules.OwnedTable + "\x00")},
		{Type: unix.NFTA_OBJ_NAME, Data: []byte(vipTCPTimeout + "\x00")},
		{Type: unix.NFTA_OBJ_TYPE, Data: binary.BigEndian.AppendUint32(nil, objCtTimeout)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_OBJ_DATA, Data: data},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWOBJ),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
		},
		Data: append([]byte{byte(f.family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}, nil
}
