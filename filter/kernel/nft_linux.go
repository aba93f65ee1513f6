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

// Hook priorities in prerouting: after conntrack (-200), the owned table
// decides new flows, then the guard drops what nothing took.
const (
	prioOwned = -160
	prioGuard = -140
)

// Names of the bucket sets in OwnedTable ("reset" is an nft keyword:
// a set of that name could not be listed by name).
const (
	ownedSet    = "owned"
	takeoverSet = "takeover"
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
}

var (
	familyIPv4 = family{name: "ip", family: nftables.TableFamilyIPv4, addrType: nftables.TypeIPAddr,
		saddrAt: 12, daddrAt: 16, addrLen: 4, netLen: 3, portReg: regPort4}
	familyIPv6 = family{name: "ip6", family: nftables.TableFamilyIPv6, addrType: nftables.TypeIP6Addr,
		saddrAt: 8, daddrAt: 24, addrLen: 16, netLen: 8, portReg: regPort6}
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

func daddrIn(f family, s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrAt, Len: f.addrLen},
		&expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

// daddrIs matches packets to a.
func daddrIs(f family, a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrAt, Len: f.addrLen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: a.AsSlice()},
	}
}

// objCounter is NFT_OBJECT_COUNTER, the type of a named counter.
const objCounter = 1

// seenCounter names the counter of new flows to spec.VIPs[i].
func seenCounter(i int) string { return fmt.Sprintf("seen%d", i) }

func dportIn(s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID},
	}
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

func setCtMark(mark uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg, Data: native32(mark)}, &expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true}}
}

func setMetaMark(mark uint32) []expr.Any {
	return []expr.Any{&expr.Immediate{Register: reg, Data: native32(mark)}, &expr.Meta{Key: expr.MetaKeyMARK, Register: reg, SourceRegister: true}}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func goTo(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain} }

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
	vipSet := &nftables.Set{Table: t, Name: "vips", KeyType: in.f.addrType, Constant: true}
	if err := in.c.AddSet(vipSet, addrElems(vips)); err != nil {
		return fmt.Errorf("%s %s: set vips: %w", in.f.name, t.Name, err)
	}
	accept := nftables.ChainPolicyAccept
	ch := in.c.AddChain(&nftables.Chain{Name: "guard", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioGuard), Policy: &accept})
	mine := filter.Mark(in.spec.Self)
	in.c.AddRule(rule(t, ch, "flows of this node (established, and new ones farm_owned took)", ctMarkIs(mine), one(verdict(expr.VerdictAccept))))
	in.c.AddRule(rule(t, ch, "not to a VIP: not ours to decide", daddrIn(in.f, vipSet, true), one(verdict(expr.VerdictAccept))))
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
		ps := &nftables.Set{Table: t, Name: name + "_ports", KeyType: nftables.TypeInetService, Interval: true, Constant: true}
		if err := in.c.AddSet(ps, portElems(ports)); err != nil {
			return fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, ps.Name, err)
		}
		in.c.AddRule(rule(t, ch, "balanced "+name+" that nothing took: other nodes' flows, buckets not ours, invalid",
			l4proto(p), dportIn(ps), one(verdict(expr.VerdictDrop))))
	}
	return nil
}

// owned queues the contents of the family's OwnedTable (created before,
// with the owner flag, on the engine's socket), with empty bucket sets.
// It returns the bucket sets, which Apply refills.
func (in installer) owned(vips []netip.Addr) (owned, reset *nftables.Set, err error) {
	t := &nftables.Table{Name: rules.OwnedTable, Family: in.f.family}
	vipSet := &nftables.Set{Table: t, Name: "vips", KeyType: in.f.addrType, Constant: true}
	if err := in.c.AddSet(vipSet, addrElems(vips)); err != nil {
		return nil, nil, fmt.Errorf("%s %s: set vips: %w", in.f.name, t.Name, err)
	}
	owned = bucketSet(t, ownedSet, "buckets this node answers (jhash ... mod 4096 seed 0x6661726d)")
	reset = bucketSet(t, takeoverSet, "buckets taken over whose orphaned flows are reset (reset window)")
	for _, s := range []*nftables.Set{owned, reset} {
		if err := in.c.AddSet(s, nil); err != nil {
			return nil, nil, fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, s.Name, err)
		}
	}
	if err := in.switchSets(t); err != nil {
		return nil, nil, err
	}
	accept := nftables.ChainPolicyAccept
	pre := in.c.AddChain(&nftables.Chain{Name: "pre", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioOwned), Policy: &accept})
	in.c.AddRule(rule(t, pre, "only new flows are decided here", ctState(expr.CmpOpNeq, expr.CtStateBitNEW), one(verdict(expr.VerdictAccept))))
	in.c.AddRule(rule(t, pre, "not to a VIP", daddrIn(in.f, vipSet, true), one(verdict(expr.VerdictAccept))))
	// Count the new flows to each VIP, whoever owns them, for the farm's
	// frame-delivery self-test (every node should see all of them).
	for i, v := range in.spec.VIPs {
		v = v.Unmap()
		if v.Is6() != (in.f.family == nftables.TableFamilyIPv6) {
			continue
		}
		name := seenCounter(i)
		in.c.AddObj(&nftables.CounterObj{Table: t, Name: name})
		in.c.AddRule(rule(t, pre, "seen: a new TCP flow to "+v.String(),
			daddrIs(in.f, v), l4proto(filter.ProtoTCP), bareSYN(expr.CmpOpEq), one(&expr.Objref{Type: objCounter, Name: name})))
		in.c.AddRule(rule(t, pre, "seen: a new UDP flow to "+v.String(),
			daddrIs(in.f, v), l4proto(filter.ProtoUDP), one(&expr.Objref{Type: objCounter, Name: name})))
	}
	mine := filter.Mark(in.spec.Self)
	for i, r := range in.spec.Rules {
		name := fmt.Sprintf("rule%d", i+1)
		proto := filter.ProtoName(r.Proto)
		ps := &nftables.Set{Table: t, Name: name + "_ports", KeyType: nftables.TypeInetService, Interval: true, Constant: true}
		if err := in.c.AddSet(ps, portElems(r.Ports)); err != nil {
			return nil, nil, fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, ps.Name, err)
		}
		ch := in.c.AddChain(&nftables.Chain{Name: name, Table: t})
		// goto: a port of several rules is decided by the first, as filter.Decider does.
		in.c.AddRule(rule(t, pre, fmt.Sprintf("[[rule]] %d: %s %s, affinity %s", i+1, proto, r.Ports, r.Affinity),
			l4proto(r.Proto), dportIn(ps), one(goTo(name))))
		bucket := in.f.bucketExprs(r.Affinity)
		switch r.Proto {
		case filter.ProtoTCP:
			in.c.AddRule(rule(t, ch, "a bare SYN in a bucket this node owns: this node's flow",
				l4proto(r.Proto), bareSYN(expr.CmpOpEq), bucket, one(inSet(owned)), setCtMark(mine), one(verdict(expr.VerdictAccept))))
			in.c.AddRule(in.plannedChain(t, ch, r.Affinity, append(l4proto(r.Proto), bareSYN(expr.CmpOpEq)...)))
			in.c.AddRule(rule(t, ch, "reset window: an orphan in a bucket taken over, passed without a conntrack mark",
				l4proto(r.Proto), bareSYN(expr.CmpOpNeq), bucket, one(inSet(reset)), setMetaMark(resetMark), one(verdict(expr.VerdictAccept))))
		default:
			in.c.AddRule(rule(t, ch, "a new flow in a bucket this node owns: this node's flow",
				l4proto(r.Proto), bucket, one(inSet(owned)), setCtMark(mine), one(verdict(expr.VerdictAccept))))
			in.c.AddRule(in.plannedChain(t, ch, r.Affinity, l4proto(r.Proto)))
		}
	}
	return owned, reset, nil
}
