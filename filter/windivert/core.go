package windivert

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"

	"github.com/webfarm/farm/filter"
)

// Core is the engine's per-packet decision, pure and allocation-free: the
// flow table first, the farm's filter.Decider for what opens a flow. The
// OS loop (engine_windows.go) calls Decide for each diverted packet and
// reinjects it when the verdict is Accept or Reset; tests call it with
// built packets. Decide must be called from one goroutine at a time (it
// owns the flow table); Stats, Seen and the Decider's setters are safe
// from any.
//
// A packet of a flow in the table is accepted, whoever owns its bucket
// now: flows keep their node across table changes, as conntrack marks
// keep them on Linux. Otherwise the Decider decides as on Linux: a bare
// TCP SYN or a UDP datagram in a bucket this node answers for is accepted
// and its flow enters the table; a mid-flow TCP packet is reset during a
// reset window when this node took its bucket over from a dead node, and
// dropped otherwise; everything else is dropped. The table holds only
// this node's flows: every node sees every flow of the farm, and keeping
// the others' would multiply its size by the farm's and let other nodes'
// traffic evict this node's flows, for nothing (an unknown packet is
// dropped anyway).
type Core struct {
	d     *filter.Decider
	flows *FlowTable
	vips  []netip.Addr
	seen  []atomic.Uint64

	// planned is the table and planned switch of the last plan, in one
	// pointer so a packet never sees one plan's table with another's
	// switch; nil when no switch is due.
	planned atomic.Pointer[planned]

	accepted, dropped, reset, malformed atomic.Uint64
}

// planned is a table with its planned switch (plan.Switch).
type planned struct {
	t  *table.Table
	sw *plan.Switch
}

// SetSwitch installs the plan's table and planned switch (nil: none) for
// the decisions that follow: while one is due, a new flow of a bucket that
// moves is decided by the wall-clock time it is decided at, against the
// switch's times. Safe to call with Decide.
func (c *Core) SetSwitch(t *table.Table, sw *plan.Switch) {
	if sw == nil || t == nil {
		c.planned.Store(nil)
		return
	}
	c.planned.Store(&planned{t: t, sw: sw})
}

// NewCore returns a core for node self with the given rules, VIPs (for
// Seen, in this order) and flow table. It serves nobody until the
// Decider gets a table.
func NewCore(self uint8, rules []filter.Rule, vips []netip.Addr, flows *FlowTable) *Core {
	return &Core{
		d: filter.NewDecider(self, rules), flows: flows,
		vips: append([]netip.Addr(nil), vips...), seen: make([]atomic.Uint64, len(vips)),
	}
}

// Decider returns the core's decider, for Apply.
func (c *Core) Decider() *filter.Decider { return c.d }

// Flows returns the core's flow table; only the goroutine calling Decide
// may use it.
func (c *Core) Flows() *FlowTable { return c.flows }

// Decide returns the verdict for one diverted inbound packet (raw IP) at
// now (nanoseconds on any monotonic clock, the same for every call):
// Accept (reinject it, the flow is this node's), Reset (reinject it, the
// local stack answers it with a TCP reset) or Drop.
func (c *Core) Decide(pkt []byte, now int64) filter.Verdict {
	p, err := filter.ParsePacket(pkt)
	if err != nil || p.Fragment || (p.Proto != filter.ProtoTCP && p.Proto != filter.ProtoUDP) {
		// The filter diverts only whole TCP and UDP packets, so this is
		// a packet WinDivert should not have given us: never pass it.
		c.malformed.Add(1)
		c.dropped.Add(1)
		return filter.Drop
	}
	k := KeyOf(&p)
	if f, ok := c.flows.Lookup(&k, now); ok {
		if next, keep := nextClass(c.flows.ClassOf(f), &p); keep {
			c.flows.Touch(f, next, now)
			c.accepted.Add(1)
			return filter.Accept
		}
		// A SYN on the 5-tuple of a flow that closed: the client opened
		// a new connection, which is decided afresh.
		c.flows.Delete(f)
	}
	dec := c.d.Decide(pkt)
	if pl := c.planned.Load(); pl != nil && dec.Opens {
		// The switch compares wall-clock times (the farm's clocks are
		// synchronized); now is on another clock.
		dec = switched(dec, pl, c.d.Self(), time.Now().UnixNano())
	}
	if dec.Opens {
		for i := range c.vips {
			if c.vips[i] == dec.Dst {
				c.seen[i].Add(1)
				break
			}
		}
	}
	switch dec.Verdict {
	case filter.Accept:
		class := ClassUDPNew
		if p.Proto == filter.ProtoTCP {
			class = ClassSYN
		}
		c.flows.Insert(&k, c.d.Self(), class, now)
		c.accepted.Add(1)
		return filter.Accept
	case filter.Reset:
		c.reset.Add(1)
		return filter.Reset
	}
	c.dropped.Add(1)
	return filter.Drop
}

// switched returns dec as the planned switch pl decides it at now (unix
// ns): only for a packet that opens a flow and that a rule covers.
func switched(dec filter.Decision, pl *planned, self uint8, now int64) filter.Decision {
	switch dec.Reason {
	case filter.ReasonOwner, filter.ReasonNotOwner, filter.ReasonUnowned:
	default:
		return dec
	}
	dec.Owner = pl.t[dec.Bucket]
	if pl.sw.Answers(dec.Bucket, dec.Owner == self, now) {
		dec.Verdict, dec.Reason, dec.Owner = filter.Accept, filter.ReasonOwner, self
	} else {
		dec.Verdict = filter.Drop
		if dec.Reason == filter.ReasonOwner {
			dec.Reason = filter.ReasonNotOwner
		}
	}
	return dec
}

// nextClass returns the class of a known flow after packet p, and false
// when p is a SYN reopening a closed flow's 5-tuple.
func nextClass(c Class, p *filter.Packet) (Class, bool) {
	if p.Proto == filter.ProtoUDP {
		return ClassUDP, true
	}
	switch {
	case p.IsSYN():
		if c == ClassClosing {
			return c, false
		}
		return c, true // a retransmitted SYN
	case p.TCPFlags&(filter.TCPFin|filter.TCPRst) != 0:
		return ClassClosing, true
	case c == ClassSYN:
		return ClassEstablished, true // the handshake's ACK, or data
	}
	return c, true
}

// Seed adds a flow this node already serves (found in the local TCP table
// when the engine starts after a crash), unless the table has it.
func (c *Core) Seed(k FlowKey, class Class, now int64) {
	if _, ok := c.flows.Lookup(&k, now); !ok {
		c.flows.Insert(&k, c.d.Self(), class, now)
	}
}

// CoreStats are the core's counters since it was made.
type CoreStats struct {
	// Accepted counts packets reinjected as this node's (flows in the
	// table and new flows accepted).
	Accepted uint64
	// Dropped counts packets dropped, for any reason.
	Dropped uint64
	// Reset counts orphaned packets reinjected for the stack to reset.
	Reset uint64
	// Malformed counts dropped packets that were not whole TCP or UDP
	// (included in Dropped); it should stay 0.
	Malformed uint64
}

// Stats returns the counters; safe from any goroutine.
func (c *Core) Stats() CoreStats {
	return CoreStats{Accepted: c.accepted.Load(), Dropped: c.dropped.Load(), Reset: c.reset.Load(), Malformed: c.malformed.Load()}
}

// Seen returns, per VIP in NewCore's order, how many flow-opening packets
// (bare SYNs, UDP datagrams) of flows not in the table the core saw
// before deciding: every node should see all of them (the frame-delivery
// self-test). Safe from any goroutine.
func (c *Core) Seen() []uint64 {
	out := make([]uint64, len(c.seen))
	for i := range c.seen {
		out[i] = c.seen[i].Load()
	}
	return out
}
