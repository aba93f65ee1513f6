package filter

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/webfarm/farm/farm/table"
)

// Verdict is what to do with a queued packet. The zero value is Drop, so a
// forgotten assignment fails closed.
type Verdict uint8

const (
	// Drop discards the packet: another node (or nobody) serves the client.
	Drop Verdict = iota
	// Accept lets the packet through, marked as this node's flow.
	Accept
	// Reset lets the packet through WITHOUT a mark: it belongs to a flow
	// of a dead node whose bucket this node took over, and the local TCP
	// stack, which has no socket for it, answers it with a TCP reset, so
	// the client gives up that connection at once and opens a new one
	// (which this node, the bucket's owner, accepts).
	Reset
)

// String returns "accept", "drop" or "reset".
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reset:
		return "reset"
	}
	return "drop"
}

// Reason says why a Decision went the way it did; counted and logged so an
// operator can tell "not mine" (normal) from "malformed" or "no table".
type Reason uint8

const (
	// ReasonNone is the zero value; Decide never returns it.
	ReasonNone Reason = iota
	// ReasonOwner: this node owns the client's bucket (accept).
	ReasonOwner
	// ReasonNotOwner: another node owns the bucket (drop).
	ReasonNotOwner
	// ReasonUnowned: no node owns the bucket (table entry 0, drop).
	ReasonUnowned
	// ReasonNoTable: no table has been set yet or it was withdrawn (drop:
	// a node that does not know its share must not serve).
	ReasonNoTable
	// ReasonNoRule: no rule covers the protocol and destination port (drop;
	// the kernel rules queue only covered traffic, so this is a mismatch).
	ReasonNoRule
	// ReasonMalformed: the packet could not be parsed (drop).
	ReasonMalformed
	// ReasonFragment: a non-first fragment, which has no ports (drop).
	ReasonFragment
	// ReasonOrphan: a TCP packet that does not open a flow (not a bare
	// SYN), in a bucket this node owns and took over from a dead node: a
	// flow of the dead node, which this node cannot continue (reset).
	ReasonOrphan
	// ReasonNoTakeover: a TCP packet that does not open a flow, in a bucket
	// this node owns but did not take over from a dead node (drop: if it is
	// anybody's flow, a live node serves it).
	ReasonNoTakeover
)

var reasonNames = [...]string{
	ReasonNone:       "none",
	ReasonOwner:      "owner",
	ReasonNotOwner:   "not-owner",
	ReasonUnowned:    "unowned",
	ReasonNoTable:    "no-table",
	ReasonNoRule:     "no-rule",
	ReasonMalformed:  "malformed",
	ReasonFragment:   "fragment",
	ReasonOrphan:     "orphan",
	ReasonNoTakeover: "no-takeover",
}

// String returns the reason's short name ("owner", "not-owner", ...), stable
// for logs and metrics labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Decision is the outcome for one packet, with what led to it.
type Decision struct {
	// Verdict is Accept or Reset only when this node owns the client's
	// bucket.
	Verdict Verdict
	// Reason explains the verdict.
	Reason Reason
	// Bucket is the client's bucket; valid when a rule matched.
	Bucket uint16
	// Owner is the bucket's owner in the table; valid when a table was set.
	Owner uint8
	// Dst is the packet's destination (a VIP) and Opens tells whether the
	// packet opens a flow (a bare TCP SYN or a UDP datagram); valid when a
	// rule matched. Engines count the new flows they see per VIP with them
	// (the frame-delivery self-test).
	Dst   netip.Addr
	Opens bool
}

// Decider holds the per-packet decision: fixed rules, this node's id, an
// ownership table swapped atomically as membership changes and the set of
// buckets recently taken over from a dead node. Decide is safe for
// concurrent use with SetTable, SetTakeover and with itself.
type Decider struct {
	self     uint8
	rules    []Rule
	table    atomic.Pointer[table.Table]
	takeover atomic.Pointer[table.Set]
}

// NewDecider returns a decider for node self with the given rules (copied;
// the first rule matching a packet's protocol and destination port wins).
// It starts with no table, so it drops everything until SetTable: a node
// serves only once it knows its share.
func NewDecider(self uint8, rules []Rule) *Decider {
	return &Decider{self: self, rules: append([]Rule(nil), rules...)}
}

// SetTable installs a new ownership table for the following decisions. The
// table must not be modified afterwards (build a new one instead). A nil
// table withdraws service: every packet is dropped.
func (d *Decider) SetTable(t *table.Table) { d.table.Store(t) }

// Table returns the table in use, or nil.
func (d *Decider) Table() *table.Table { return d.table.Load() }

// SetTakeover installs the buckets this node took over from a dead node
// and whose orphaned flows it should reset (farm/plan computes it);
// nil, the initial state, resets nothing. The set must not be modified
// afterwards. It matters only while the kernel queues such packets (the
// reset window, rules.SetReset): open the window with SetTakeover then
// SetReset(on), close it with SetReset(off) then SetTakeover(nil), so no
// packet queued for a reset finds an empty set. Buckets in the set are
// reset only while the table also gives them to this node.
func (d *Decider) SetTakeover(t *table.Set) { d.takeover.Store(t) }

// Takeover returns the takeover set in use, or nil.
func (d *Decider) Takeover() *table.Set { return d.takeover.Load() }

// Self returns the node id the decider accepts for.
func (d *Decider) Self() uint8 { return d.self }

// Decide returns the verdict for a queued packet (raw IP, as NFQUEUE
// delivers it). It allocates nothing.
//
// The first packet of a flow (a bare TCP SYN, or a UDP datagram) is
// accepted when this node owns the client's bucket. Any other TCP packet
// belongs to a flow this node has no state for (the kernel queues those
// only during a reset window): it is reset when this node owns the bucket
// and took it over from a dead node, dropped otherwise.
func (d *Decider) Decide(pkt []byte) Decision {
	p, err := ParsePacket(pkt)
	if err != nil {
		return Decision{Reason: ReasonMalformed}
	}
	if p.Fragment {
		return Decision{Reason: ReasonFragment}
	}
	var rule *Rule
	for i := range d.rules {
		if d.rules[i].Proto == p.Proto && d.rules[i].Ports.Has(p.DstPort) {
			rule = &d.rules[i]
			break
		}
	}
	if rule == nil {
		return Decision{Reason: ReasonNoRule}
	}
	opens := p.Proto != ProtoTCP || p.IsSYN()
	dec := Decision{Bucket: BucketOf(p.Src, p.SrcPort, rule.Affinity), Dst: p.Dst, Opens: opens}
	t := d.table.Load()
	switch {
	case t == nil:
		dec.Reason = ReasonNoTable
	case t[dec.Bucket] == 0:
		dec.Reason = ReasonUnowned
	case t[dec.Bucket] == d.self:
		dec.Owner = t[dec.Bucket]
		switch {
		case opens:
			dec.Verdict, dec.Reason = Accept, ReasonOwner
		case d.takeover.Load().Has(dec.Bucket):
			dec.Verdict, dec.Reason = Reset, ReasonOrphan
		default:
			dec.Reason = ReasonNoTakeover
		}
	default:
		dec.Owner = t[dec.Bucket]
		dec.Reason = ReasonNotOwner
	}
	return dec
}
