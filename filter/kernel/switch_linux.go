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
// to a netlink transaction. The rule chains jump to chain "planned" for a
// new flow whose bucket is not in "owned"; Apply fills the two sets and
// rewrites the chain's two rules (their times are constants) in the same
// transaction as the owned set, and empties the chain when no switch is due.
const (
	loseSet     = "sw_lose"
	gainSet     = "sw_gain"
	switchChain = "planned"
	// nftMetaTimeNS is NFT_META_TIME_NS (Linux 5.4): the packet's time,
	// nanoseconds since the epoch on the wall clock (ktime_get_real_ns), a
	// u64 in host order. google/nftables v0.3.0 has no MetaKey for it.
	nftMetaTimeNS = expr.MetaKey(0x1e)
	// regTime holds the time: NFT_REG_2 (bytes 16..31), clear of the bucket
	// in NFT_REG_1 that the two rules look up.
	regTime = unix.NFT_REG_2
)

// switchObjs are one family's switch sets and chain.
type switchObjs struct {
	lose, gain *nftables.Set
	chain      *nftables.Chain
}

// switchSets queues the switch sets and the (empty) switch chain of t.
func (in installer) switchSets(t *nftables.Table) (switchObjs, error) {
	sw := switchObjs{
		lose:  bucketSet(t, loseSet, "buckets this node answers until the planned switch time"),
		gain:  bucketSet(t, gainSet, "buckets this node answers from the planned switch time plus the margin"),
		chain: in.c.AddChain(&nftables.Chain{Name: switchChain, Table: t}),
	}
	for _, s := range []*nftables.Set{sw.lose, sw.gain} {
		if err := in.c.AddSet(s, nil); err != nil {
			return switchObjs{}, fmt.Errorf("%s %s: set %s: %w", in.f.name, t.Name, s.Name, err)
		}
	}
	return sw, nil
}

// jumpSwitch is the rule-chain rule that sends a new flow (its bucket left
// in reg by bucket) to the switch chain; match holds the rule's protocol
// test (and the bare-SYN test for TCP).
func jumpSwitch(t *nftables.Table, ch *nftables.Chain, match, bucket []expr.Any) *nftables.Rule {
	return rule(t, ch, "a planned switch is due: decided by the packet's time",
		match, bucket, one(&expr.Verdict{Kind: expr.VerdictJump, Chain: switchChain}))
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
// rewrite of the switch chain for sw (nil: no switch, empty sets and chain).
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
	st.conn.FlushChain(fs.sw.chain)
	if sw == nil {
		return nil
	}
	t, mine := fs.ownedT, filter.Mark(self)
	if len(lose) > 0 {
		st.conn.AddRule(rule(t, fs.sw.chain, "answered until the switch time",
			one(inSet(fs.sw.lose)), packetTime(expr.CmpOpLt, sw.Until), setCtMark(mine), one(verdict(expr.VerdictAccept))))
	}
	if len(gain) > 0 {
		st.conn.AddRule(rule(t, fs.sw.chain, "answered from the switch time plus the margin",
			one(inSet(fs.sw.gain)), packetTime(expr.CmpOpGte, sw.From), setCtMark(mine), one(verdict(expr.VerdictAccept))))
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
