package windivert

import (
	"net/netip"
	"testing"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
)

const (
	syn    = filter.TCPSyn
	ack    = filter.TCPAck
	synack = filter.TCPSyn | filter.TCPAck
	fin    = filter.TCPFin | filter.TCPAck
	rst    = filter.TCPRst
)

func newTestCore(t testing.TB) *Core {
	t.Helper()
	s := exampleSpec(t)
	return NewCore(7, s.Rules, []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("2001:db8::100")},
		NewFlowTable(64, testTimeouts))
}

// TestCoreDecide plays packet sequences through a core and checks each
// verdict and the flow's class after it. Each case starts from a fresh
// core; table is the ownership table in force (nil: none yet), reset the
// takeover set.
func TestCoreDecide(t *testing.T) {
	const c4, v4 = "192.0.2.1", "10.0.0.100"
	const c6, v6 = "2001:db8:1::1", "2001:db8::100"
	tcp4 := func(flags uint8) []byte { return pkt(c4, v4, tcpHdr(40000, 80, flags), 0) }
	tcp6 := func(flags uint8) []byte { return pkt(c6, v6, tcpHdr(40000, 443, flags), 0) }
	udp4 := pkt(c4, v4, udpHdr(5353, 53), 10)
	bucket4 := filter.BucketOf(netip.MustParseAddr(c4), 40000, filter.AffinityIP)
	theirs := func(b uint16, owner uint8) *table.Table { tb := fill(7); tb[b] = owner; return tb }
	var takeover table.Set
	takeover.Add(bucket4)

	type step struct {
		pkt   []byte
		want  filter.Verdict
		class Class // the flow's class after the packet; classFree: not in the table
	}
	cases := []struct {
		name  string
		table *table.Table
		reset *table.Set
		steps []step
	}{
		{"no table: nothing is served", nil, nil, []step{
			{tcp4(syn), filter.Drop, classFree},
		}},
		{"a TCP flow through its life", fill(7), nil, []step{
			{tcp4(syn), filter.Accept, ClassSYN},
			{tcp4(syn), filter.Accept, ClassSYN}, // retransmitted SYN
			{tcp4(ack), filter.Accept, ClassEstablished},
			{tcp4(ack | 0x08), filter.Accept, ClassEstablished},
			{tcp4(fin), filter.Accept, ClassClosing},
			{tcp4(ack), filter.Accept, ClassClosing}, // the last ACK still passes
		}},
		{"IPv6 flow, reset by the client", fill(7), nil, []step{
			{tcp6(syn), filter.Accept, ClassSYN},
			{tcp6(ack), filter.Accept, ClassEstablished},
			{tcp6(rst), filter.Accept, ClassClosing},
		}},
		{"a SYN on a closed flow's 5-tuple is decided afresh", fill(7), nil, []step{
			{tcp4(syn), filter.Accept, ClassSYN},
			{tcp4(fin), filter.Accept, ClassClosing},
			{tcp4(syn), filter.Accept, ClassSYN},
		}},
		{"another node's bucket", theirs(bucket4, 3), nil, []step{
			{tcp4(syn), filter.Drop, classFree},
			{tcp4(ack), filter.Drop, classFree},
		}},
		{"unowned bucket", theirs(bucket4, 0), nil, []step{
			{tcp4(syn), filter.Drop, classFree},
		}},
		{"mid-flow packet of a flow this node does not have", fill(7), nil, []step{
			{tcp4(ack), filter.Drop, classFree},
			{tcp4(synack), filter.Drop, classFree},
		}},
		{"reset window: orphaned flows of a taken-over bucket are reset", fill(7), &takeover, []step{
			{tcp4(ack), filter.Reset, classFree},
			{tcp6(ack), filter.Drop, classFree},  // its bucket was not taken over
			{tcp4(syn), filter.Accept, ClassSYN}, // the client reconnects
			{tcp4(ack), filter.Accept, ClassEstablished},
		}},
		{"UDP flow", fill(7), nil, []step{
			{udp4, filter.Accept, ClassUDPNew},
			{udp4, filter.Accept, ClassUDP},
		}},
		{"UDP of another node", theirs(filter.BucketOf(netip.MustParseAddr(c4), 5353, filter.AffinityIPPort), 3), nil, []step{
			{udp4, filter.Drop, classFree},
			{udp4, filter.Drop, classFree},
		}},
		{"not a port the rules balance", fill(7), nil, []step{
			{pkt(c4, v4, tcpHdr(40000, 22, syn), 0), filter.Drop, classFree},
		}},
		{"malformed and fragments are dropped", fill(7), nil, []step{
			{tcp4(syn)[:30], filter.Drop, classFree},
			{func() []byte { b := tcp4(syn); b[6], b[7] = 0x20, 0x10; return b }(), filter.Drop, classFree},
			{[]byte{0x15}, filter.Drop, classFree},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			core := newTestCore(t)
			core.Decider().SetTable(c.table)
			core.Decider().SetTakeover(c.reset)
			for i, s := range c.steps {
				now := int64(i) * sec
				if got := core.Decide(s.pkt, now); got != s.want {
					t.Fatalf("packet %d: verdict %v, want %v", i, got, s.want)
				}
				p, err := filter.ParsePacket(s.pkt)
				if err != nil {
					continue
				}
				k := KeyOf(&p)
				f, ok := core.Flows().Lookup(&k, now)
				switch {
				case s.class == classFree && ok:
					t.Fatalf("packet %d: flow in the table (%v), want none", i, core.Flows().ClassOf(f))
				case s.class != classFree && !ok:
					t.Fatalf("packet %d: no flow, want %v", i, s.class)
				case ok && core.Flows().ClassOf(f) != s.class:
					t.Fatalf("packet %d: class %v, want %v", i, core.Flows().ClassOf(f), s.class)
				case ok && core.Flows().Owner(f) != 7:
					t.Fatalf("packet %d: owner %d, want 7", i, core.Flows().Owner(f))
				}
			}
		})
	}
}

// TestCoreFlowsOutliveTableChanges: a flow accepted under one table keeps
// going when its bucket moves to another node or service is withdrawn,
// as conntrack-marked flows do on Linux; new flows follow the new table.
func TestCoreFlowsOutliveTableChanges(t *testing.T) {
	core := newTestCore(t)
	core.Decider().SetTable(fill(7))
	old := pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, syn), 0)
	if core.Decide(old, 0) != filter.Accept {
		t.Fatal("first SYN not accepted")
	}
	core.Decider().SetTable(fill(3))
	if got := core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 0), sec); got != filter.Accept {
		t.Fatalf("established flow after its bucket moved: %v", got)
	}
	if got := core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(40001, 80, syn), 0), sec); got != filter.Drop {
		t.Fatalf("new flow in a moved bucket: %v", got)
	}
	core.Decider().SetTable(nil)
	if got := core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 0), 2*sec); got != filter.Accept {
		t.Fatalf("established flow after the table was withdrawn: %v", got)
	}
}

func TestCoreSeenAndStats(t *testing.T) {
	core := newTestCore(t)
	core.Decider().SetTable(fill(3)) // another node's: seen, then dropped
	for range 3 {
		core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, syn), 0), 0)
	}
	core.Decide(pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 0), 0) // not a new flow
	core.Decide(pkt("2001:db8:1::1", "2001:db8::100", udpHdr(1, 53), 0), 0)
	core.Decider().SetTable(fill(7))
	core.Decide(pkt("2001:db8:1::1", "2001:db8::100", tcpHdr(1, 443, syn), 0), 0)
	core.Decide(pkt("2001:db8:1::1", "2001:db8::100", tcpHdr(1, 443, syn), 0), 0) // in the table: not new
	if got := core.Seen(); got[0] != 3 || got[1] != 2 {
		t.Fatalf("seen %v, want [3 2]", got)
	}
	if st := core.Stats(); st.Accepted != 2 || st.Dropped != 5 || st.Reset != 0 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCoreSeed(t *testing.T) {
	core := newTestCore(t)
	ack4 := pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 0)
	core.Seed(key(t, ack4), ClassEstablished, 0)
	core.Seed(key(t, ack4), ClassSYN, 0) // already there: unchanged
	// No table at all: only a seeded flow passes.
	if got := core.Decide(ack4, sec); got != filter.Accept {
		t.Fatalf("seeded flow: %v", got)
	}
	k := key(t, ack4)
	if f, ok := core.Flows().Lookup(&k, sec); !ok || core.Flows().ClassOf(f) != ClassEstablished {
		t.Fatal("seeded flow lost its class")
	}
}

// TestCoreDecideAllocs: the per-packet path allocates nothing, whether a
// packet hits the table, opens a flow (evicting once full) or is dropped.
func TestCoreDecideAllocs(t *testing.T) {
	core := newTestCore(t)
	core.Decider().SetTable(fill(7))
	var takeover table.Set
	for b := range uint16(table.Buckets) {
		takeover.Add(b)
	}
	core.Decider().SetTakeover(&takeover)
	pkts := [][]byte{
		pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, syn), 0),
		pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 100),
		pkt("2001:db8:1::1", "2001:db8::100", tcpHdr(1, 443, syn), 0),
		pkt("192.0.2.1", "10.0.0.100", udpHdr(5353, 53), 20),
		pkt("192.0.2.9", "10.0.0.100", tcpHdr(1, 80, ack), 0), // orphan: reset
		pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 22, syn), 0),
	}
	var port uint16
	i := 0
	allocs := testing.AllocsPerRun(5000, func() {
		p := pkts[i%len(pkts)]
		if i%len(pkts) == 0 { // a new client port each round: the table fills and evicts
			port++
			p[20], p[21] = byte(port>>8), byte(port)
		}
		core.Decide(p, int64(i))
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
	if core.Flows().Evicted() == 0 {
		t.Fatal("the table never filled: the test does not cover eviction")
	}
}

func BenchmarkCoreDecide(b *testing.B) {
	core := newTestCore(b)
	core.Decider().SetTable(fill(7))
	est := pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, syn), 0)
	core.Decide(est, 0)
	est = pkt("192.0.2.1", "10.0.0.100", tcpHdr(40000, 80, ack), 1000)
	other := pkt("192.0.2.2", "10.0.0.100", tcpHdr(40000, 80, ack), 1000)
	for _, c := range []struct {
		name string
		p    []byte
	}{{"own-flow", est}, {"other-node-flow", other}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				core.Decide(c.p, 1)
			}
		})
	}
}
