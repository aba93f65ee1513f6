package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

// The planned switch (plan.Switch) in the kernel: buckets this node answers
// until a time (set "sw_lose") and buckets it answers from a time (set
// "sw_gain"), decided by each new flow's first packet against nft's meta
// time, so the switch happens at packet time, not when the agent gets round
// to a netlink transaction. Each rule chain (ruleN) jumps, for a new flow
// its "owned" rule did not take, to its own chain ruleN_planned, whose two
// rules compute the bucket (with the rule's affinity) and compare the time:
// the kernel refuses a rule that reads a register it did not write itself
// (ENODATA), so the bucket cannot be handed over in a register across the
// jump. Apply fills the two sets and rewrites those rules (their times are
// constants) in the same transaction as the owned set, and empties the
// chains when no switch is due, so a packet then costs one jump only.
const (
	loseSet = "sw_lose"
	gainSet = "sw_gain"
	// nftMetaTimeNS is NFT_META_TIME_NS (Linux 5.4): the packet's time,
	// nanoseconds since the epoch on the wall clock (ktime_get_real_ns), a
	// u64 in host order. google/nftables v0.3.0 has no MetaKey for it.
	nftMetaTimeNS = expr.MetaKey(0x1e)
	// regTime holds the time: NFT_REG_2 (bytes 16..31), clear of the bucket
	// in NFT_REG_1 that the rule looks up first (an IP-port key's port,
	// which shares NFT_REG_2, is no longer needed once hashed).
	regTime = unix.NFT_REG_2
)

// switchObjs are one family's switch sets and planned chains.
type switchObjs struct {
	lose, gain *nftables.Set
	chains     []plannedChain
}

// plannedChain is the planned chain of one [[rule]] and the affinity its
// bucket is computed with.
type plannedChain struct {
	chain *nftables.Chain
	aff   filter.Affinity
	tcp   bool // its flows get the short TIME_WAIT policy
}

// switchSets queues the (empty) switch sets of t, recorded in in.sw.
func (in installer) switchSets(t *nftables.Table) error {
	*in.sw = switchObjs{
		lose: bucketSet(t, loseSet, "buckets this node answers until the planned switch time"),
		gain: bucketSet(t, gainSet, "buckets this node answers from the planned switch time plus the margin"),
	}
	for _, s := range []*nftables.Set{in.sw.lose, in.sw.gain} {
		if err := in.c.AddSet(s, nil); err != nil {
			return fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, s.Name, err)
		}
	}
	return nil
}

// plannedChain queues the (empty) planned chain of rule chain ch, records
// it in in.sw, and returns the rule of ch that jumps to it; match holds the
// rule's protocol test (and the bare-SYN test for TCP).
func (in installer) plannedChain(t *nftables.Table, ch *nftables.Chain, aff filter.Affinity, tcp bool, match []expr.Any) *nftables.Rule {
	pc := in.c.AddChain(&nftables.Chain{Name: ch.Name + "_planned", Table: t})
	in.sw.chains = append(in.sw.chains, plannedChain{chain: pc, aff: aff, tcp: tcp})
	return rule(t, ch, "a planned switch may be due: decided by the packet's time",
		match, one(&expr.Verdict{Kind: expr.VerdictJump, Chain: pc.Name}))
}

// packetTime compares the packet's time with at (unix ns): nft compares
// registers bytewise, so the time is turned big-endian first, as nft itself
// does for meta time.
func packetTime(op expr.CmpOp, at int64) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: nftMetaTimeNS, Register: regTime},
		&expr.Byteorder{SourceRegister: regTime, DestRegister: regTime, Op: expr.ByteorderHton, Len: 8, Size: 8},
		&expr.Cmp{Op: op, Register: regTime, Data: binary.BigEndian.AppendUint64(nil, uint64(at))},
	}
}

// queueSwitch queues, for one family, the refill of the switch sets and the
// rewrite of the planned chains for sw (nil: no switch, empty sets and
// chains).
func (st *netlinkState) queueSwitch(fs *famState, self uint8, sw *plan.Switch) error {
	var lose, gain []uint16
	if sw != nil {
		for b := range uint16(len(sw.Lose) * 64) {
			if sw.Lose.Has(b) {
				lose = append(lose, b)
			}
			if sw.Gain.Has(b) {
				gain = append(gain, b)
			}
		}
	}
	if err := st.queueSet(fs, fs.sw.lose, lose); err != nil {
		return err
	}
	if err := st.queueSet(fs, fs.sw.gain, gain); err != nil {
		return err
	}
	t, mine := fs.ownedT, filter.Mark(self)
	for _, pc := range fs.sw.chains {
		st.conn.FlushChain(pc.chain)
		bucket := fs.f.bucketExprs(pc.aff)
		var timeout []expr.Any // TCP flows of this node get the short TIME_WAIT, as in the rule chain
		if pc.tcp {
			timeout = one(&expr.Objref{Type: objCtTimeout, Name: vipTCPTimeout})
		}
		if len(lose) > 0 {
			st.conn.AddRule(rule(t, pc.chain, "answered until the switch time",
				bucket, one(inSet(fs.sw.lose)), packetTime(expr.CmpOpLt, sw.Until), timeout, setCtMark(mine), one(verdict(expr.VerdictAccept))))
		}
		if len(gain) > 0 {
			st.conn.AddRule(rule(t, pc.chain, "answered from the switch time plus the margin",
				bucket, one(inSet(fs.sw.gain)), packetTime(expr.CmpOpGte, sw.From), timeout, setCtMark(mine), one(verdict(expr.VerdictAccept))))
		}
	}
	return nil
}

// queueSet queues the replacement of set s's elements by buckets.
func (st *netlinkState) queueSet(fs *famState, s *nftables.Set, buckets []uint16) error {
	st.conn.FlushSet(s)
	elems := bucketElems(buckets)
	for len(elems) > 0 {
		n := min(len(elems), elemsPerMsg)
		if err := st.conn.SetAddElements(s, elems[:n]); err != nil {
			return fmt.Errorf("apply plan: %s %s set %s: %w", fs.f.name, rules.OwnedTable, s.Name, err)
		}
		elems = elems[n:]
	}
	return nil
}
