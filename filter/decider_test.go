package filter

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/webfarm/farm/farm/table"
)

func mustPorts(t testing.TB, s string) *PortSet {
	t.Helper()
	ps, err := ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// fill returns a table where every bucket belongs to owner.
func fill(owner uint8) *table.Table {
	t := new(table.Table)
	for i := range t {
		t[i] = owner
	}
	return t
}

func TestDecide(t *testing.T) {
	web := mustPorts(t, "80,443")
	rules := []Rule{
		{Proto: ProtoTCP, Ports: web, Affinity: AffinityNetwork},
		{Proto: ProtoTCP, Ports: mustPorts(t, "80,8080"), Affinity: AffinityIPPort}, // 80 shadowed by the first rule
		{Proto: ProtoUDP, Ports: mustPorts(t, "53"), Affinity: AffinityIPPort},
	}
	const self = 7
	client4, client6 := "192.0.2.1", "2001:db8::1"
	syn4 := ip4(client4, "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 80))
	syn4alt := ip4(client4, "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 8080))
	udp4 := ip4(client4, "10.0.0.100", ProtoUDP, l4(ProtoUDP, 5353, 53))
	syn6 := ip6(client6, "2001:db8::100", ProtoTCP, l4(ProtoTCP, 40000, 443))
	udp6 := ip6(client6, "2001:db8::100", ProtoUDP, l4(ProtoUDP, 5353, 53), ext6{kind: ipv6HopByHop, size: 8})

	b4net := BucketOf(netip.MustParseAddr(client4), 40000, AffinityNetwork)
	b4port := BucketOf(netip.MustParseAddr(client4), 40000, AffinityIPPort)
	b4udp := BucketOf(netip.MustParseAddr(client4), 5353, AffinityIPPort)
	b6net := BucketOf(netip.MustParseAddr(client6), 40000, AffinityNetwork)
	b6udp := BucketOf(netip.MustParseAddr(client6), 5353, AffinityIPPort)

	// only decides whether the client's own bucket is self's or not.
	only := func(bucket uint16, owner uint8) *table.Table {
		tb := fill(3)
		tb[bucket] = owner
		return tb
	}
	frag := append([]byte(nil), syn4...)
	frag[6] = 0x20
	frag[7] = 0x10

	tests := []struct {
		name  string
		self  uint8
		table *table.Table
		pkt   []byte
		want  Decision
	}{
		{"v4 tcp owner", self, only(b4net, self), syn4, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4net, Owner: self}},
		{"v4 tcp not owner", self, only(b4net, 3), syn4, Decision{Verdict: Drop, Reason: ReasonNotOwner, Bucket: b4net, Owner: 3}},
		{"v4 tcp other bucket mine", self, fill(self), syn4, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4net, Owner: self}},
		{"v4 tcp unowned", self, only(b4net, 0), syn4, Decision{Verdict: Drop, Reason: ReasonUnowned, Bucket: b4net}},
		{"v4 tcp no table", self, nil, syn4, Decision{Verdict: Drop, Reason: ReasonNoTable, Bucket: b4net}},
		{"second rule's affinity", self, only(b4port, self), syn4alt, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4port, Owner: self}},
		{"v4 udp owner", self, only(b4udp, self), udp4, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4udp, Owner: self}},
		{"v4 udp not owner", self, only(b4udp, 9), udp4, Decision{Verdict: Drop, Reason: ReasonNotOwner, Bucket: b4udp, Owner: 9}},
		{"v6 tcp owner", self, only(b6net, self), syn6, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b6net, Owner: self}},
		{"v6 tcp not owner", self, only(b6net, 1), syn6, Decision{Verdict: Drop, Reason: ReasonNotOwner, Bucket: b6net, Owner: 1}},
		{"v6 udp owner", self, only(b6udp, self), udp6, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b6udp, Owner: self}},
		{"port not covered", self, fill(self), ip4(client4, "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 22)), Decision{Reason: ReasonNoRule}},
		{"udp port of a tcp rule", self, fill(self), ip4(client4, "10.0.0.100", ProtoUDP, l4(ProtoUDP, 40000, 80)), Decision{Reason: ReasonNoRule}},
		{"icmp", self, fill(self), ip4(client4, "10.0.0.100", 1, l4(1, 0, 0)), Decision{Reason: ReasonNoRule}},
		{"malformed", self, fill(self), syn4[:22], Decision{Reason: ReasonMalformed}},
		{"garbage", self, fill(self), []byte{0xff, 1, 2}, Decision{Reason: ReasonMalformed}},
		{"fragment", self, fill(self), frag, Decision{Reason: ReasonFragment}},
		{"self 0 never accepts", 0, fill(0), syn4, Decision{Reason: ReasonUnowned, Bucket: b4net}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecider(tt.self, rules)
			d.SetTable(tt.table)
			if got := stripDst(t, d.Decide(tt.pkt), tt.pkt); got != tt.want {
				t.Errorf("Decide() = %+v (%s), want %+v (%s)", got, got.Reason, tt.want, tt.want.Reason)
			}
		})
	}
}

// stripDst checks the decision's Dst and Opens against the packet and
// clears them, so the tables compare the rest.
func stripDst(t *testing.T, d Decision, pkt []byte) Decision {
	t.Helper()
	p, err := ParsePacket(pkt)
	if err == nil && d.Reason != ReasonNoRule && d.Reason != ReasonFragment {
		if d.Dst != p.Dst || d.Opens != (p.Proto != ProtoTCP || p.IsSYN()) {
			t.Errorf("Dst %v Opens %v for a packet to %v (flags %#x)", d.Dst, d.Opens, p.Dst, p.TCPFlags)
		}
	}
	d.Dst, d.Opens = netip.Addr{}, false
	return d
}

// takeoverOf returns a takeover set holding the given buckets.
func takeoverOf(buckets ...uint16) *table.Set {
	t := new(table.Set)
	for _, b := range buckets {
		t.Add(b)
	}
	return t
}

// TestDecideTakeover covers packets that do not open a flow: reset only when
// this node owns the bucket and took it over; SYNs and UDP as always.
func TestDecideTakeover(t *testing.T) {
	rules := []Rule{
		{Proto: ProtoTCP, Ports: mustPorts(t, "80"), Affinity: AffinityIP},
		{Proto: ProtoUDP, Ports: mustPorts(t, "53"), Affinity: AffinityIP},
	}
	const self = 4
	client4, client6 := "192.0.2.9", "2001:db8::9"
	tcp4 := func(flags uint8) []byte {
		return ip4(client4, "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), flags))
	}
	ack6 := ip6(client6, "2001:db8::100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 80), TCPAck))
	udp4 := ip4(client4, "10.0.0.100", ProtoUDP, l4(ProtoUDP, 5353, 53))
	b4 := BucketOf(netip.MustParseAddr(client4), 0, AffinityIP)
	b6 := BucketOf(netip.MustParseAddr(client6), 0, AffinityIP)
	only := func(bucket uint16, owner uint8) *table.Table {
		tb := fill(3)
		tb[bucket] = owner
		return tb
	}
	all := new(table.Set)
	for b := range table.Buckets {
		all.Add(uint16(b))
	}
	orphan := func(b uint16) Decision { return Decision{Verdict: Reset, Reason: ReasonOrphan, Bucket: b, Owner: self} }
	psh := uint8(0x08)

	tests := []struct {
		name     string
		table    *table.Table
		takeover *table.Set
		pkt      []byte
		want     Decision
	}{
		{"ack, taken over", only(b4, self), takeoverOf(b4), tcp4(TCPAck), orphan(b4)},
		{"data, taken over", only(b4, self), takeoverOf(b4), tcp4(TCPAck | psh), orphan(b4)},
		{"fin-ack, taken over", only(b4, self), takeoverOf(b4), tcp4(TCPFin | TCPAck), orphan(b4)},
		{"syn-ack, taken over", only(b4, self), takeoverOf(b4), tcp4(TCPSyn | TCPAck), orphan(b4)},
		{"rst, taken over", only(b4, self), takeoverOf(b4), tcp4(TCPRst), orphan(b4)},
		{"v6 ack, taken over", only(b6, self), takeoverOf(b6), ack6, orphan(b6)},
		{"ack, no takeover set", only(b4, self), nil, tcp4(TCPAck), Decision{Reason: ReasonNoTakeover, Bucket: b4, Owner: self}},
		{"ack, other bucket taken over", only(b4, self), takeoverOf(b4 + 1), tcp4(TCPAck), Decision{Reason: ReasonNoTakeover, Bucket: b4, Owner: self}},
		{"ack, empty takeover set", only(b4, self), new(table.Set), tcp4(TCPAck), Decision{Reason: ReasonNoTakeover, Bucket: b4, Owner: self}},
		{"ack, not owner", only(b4, 3), all, tcp4(TCPAck), Decision{Reason: ReasonNotOwner, Bucket: b4, Owner: 3}},
		{"ack, unowned", only(b4, 0), all, tcp4(TCPAck), Decision{Reason: ReasonUnowned, Bucket: b4}},
		{"ack, no table", nil, all, tcp4(TCPAck), Decision{Reason: ReasonNoTable, Bucket: b4}},
		{"syn, taken over", only(b4, self), all, tcp4(TCPSyn), Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4, Owner: self}},
		{"syn with ecn, taken over", only(b4, self), all, tcp4(TCPSyn | 0x40 | 0x80), Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4, Owner: self}},
		{"syn, not owner", only(b4, 3), all, tcp4(TCPSyn), Decision{Reason: ReasonNotOwner, Bucket: b4, Owner: 3}},
		{"udp, taken over", only(b4, self), all, udp4, Decision{Verdict: Accept, Reason: ReasonOwner, Bucket: b4, Owner: self}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecider(self, rules)
			d.SetTable(tt.table)
			d.SetTakeover(tt.takeover)
			if got := stripDst(t, d.Decide(tt.pkt), tt.pkt); got != tt.want {
				t.Errorf("Decide() = %+v (%s), want %+v (%s)", got, got.Reason, tt.want, tt.want.Reason)
			}
		})
	}
}

func TestDecideNoRules(t *testing.T) {
	d := NewDecider(1, nil)
	d.SetTable(fill(1))
	if got := d.Decide(ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 1, 80))); got.Verdict != Drop || got.Reason != ReasonNoRule {
		t.Errorf("Decide() with no rules = %+v", got)
	}
}

func TestDecideRulesCopied(t *testing.T) {
	rules := []Rule{{Proto: ProtoTCP, Ports: mustPorts(t, "80")}}
	d := NewDecider(1, rules)
	d.SetTable(fill(1))
	rules[0].Proto = ProtoUDP // the caller's slice must not reach the decider
	if got := d.Decide(ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 1, 80))); got.Verdict != Accept {
		t.Errorf("Decide() = %+v after the caller changed its rules", got)
	}
}

// TestDecideConcurrentSetTable runs decisions while tables are swapped
// (run with -race): each decision must see one whole table or the other.
func TestDecideConcurrentSetTable(t *testing.T) {
	d := NewDecider(1, []Rule{{Proto: ProtoTCP, Ports: mustPorts(t, "80")}})
	mine, theirs := fill(1), fill(2)
	pkt := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 1, 80))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			if i%2 == 0 {
				d.SetTable(mine)
			} else {
				d.SetTable(theirs)
			}
		}
		d.SetTable(nil)
	}()
	go func() {
		defer wg.Done()
		for range 2000 {
			switch got := d.Decide(pkt); {
			case got.Reason == ReasonOwner && got.Owner == 1:
			case got.Reason == ReasonNotOwner && got.Owner == 2:
			case got.Reason == ReasonNoTable:
			default:
				t.Errorf("inconsistent decision %+v", got)
				return
			}
		}
	}()
	wg.Wait()
	if got := d.Decide(pkt); got.Reason != ReasonNoTable || got.Verdict != Drop {
		t.Errorf("after SetTable(nil): %+v, want drop no-table", got)
	}
}

func TestReasonString(t *testing.T) {
	want := map[Reason]string{
		ReasonOwner: "owner", ReasonNotOwner: "not-owner", ReasonUnowned: "unowned", ReasonNoTable: "no-table",
		ReasonNoRule: "no-rule", ReasonMalformed: "malformed", ReasonFragment: "fragment",
		ReasonOrphan: "orphan", ReasonNoTakeover: "no-takeover", Reason(99): "reason(99)",
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("Reason(%d).String() = %q, want %q", r, r.String(), s)
		}
	}
	if Accept.String() != "accept" || Drop.String() != "drop" || Reset.String() != "reset" {
		t.Error("Verdict.String() wrong")
	}
}

// decideCases are the packets the allocation test and the benchmarks use:
// the first packet of a flow as NFQUEUE copies it (128 bytes at most), and
// mid-flow ACKs as queued during a reset window (the decider holds a
// takeover set of every bucket): one of a flow to reset, one of another
// node's flow to drop.
func decideCases(tb testing.TB) (*Decider, []struct {
	name string
	pkt  []byte
}) {
	d := NewDecider(1, []Rule{
		{Proto: ProtoTCP, Ports: mustPorts(tb, "80,443"), Affinity: AffinityIP},
		{Proto: ProtoUDP, Ports: mustPorts(tb, "53"), Affinity: AffinityIPPort},
	})
	tab := new(table.Table)
	for i := range tab {
		tab[i] = uint8(i%3) + 1
	}
	d.SetTable(tab)
	all := new(table.Set)
	for b := range table.Buckets {
		all.Add(uint16(b))
	}
	d.SetTakeover(all)
	// clientOf returns a client address in 192.0.2.0/24 whose bucket owner
	// is (owner) or is not (!owner) node 1.
	clientOf := func(owner bool) string {
		for i := 1; i < 255; i++ {
			c := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
			if (tab[BucketOf(c, 0, AffinityIP)] == 1) == owner {
				return c.String()
			}
		}
		tb.Fatal("no client address fits")
		return ""
	}
	ack := func(src string) []byte {
		return ip4(src, "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 40000, 443), TCPAck))
	}
	return d, []struct {
		name string
		pkt  []byte
	}{
		{"v4/tcp", ip4("192.0.2.1", "10.0.0.100", ProtoTCP, l4(ProtoTCP, 40000, 443))},
		{"v4/udp", ip4("192.0.2.1", "10.0.0.100", ProtoUDP, l4(ProtoUDP, 40000, 53))},
		{"v4/tcp-ack-reset", ack(clientOf(true))},
		{"v4/tcp-ack-drop", ack(clientOf(false))},
		{"v6/tcp", ip6("2001:db8::1", "2001:db8::100", ProtoTCP, l4(ProtoTCP, 40000, 443))},
		{"v6/udp", ip6("2001:db8::1", "2001:db8::100", ProtoUDP, l4(ProtoUDP, 40000, 53), ext6{kind: ipv6HopByHop, size: 8})},
	}
}

func TestDecideAllocs(t *testing.T) {
	d, cases := decideCases(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := d.Decide(c.pkt)
			switch {
			case strings.HasSuffix(c.name, "-reset") && got.Verdict != Reset,
				strings.HasSuffix(c.name, "-drop") && (got.Verdict != Drop || got.Reason != ReasonNotOwner),
				got.Reason != ReasonOwner && got.Reason != ReasonNotOwner && got.Reason != ReasonOrphan:
				t.Fatalf("Decide() = %+v (%s), want a table decision fitting %s", got, got.Reason, c.name)
			}
			if n := testing.AllocsPerRun(1000, func() { _ = d.Decide(c.pkt) }); n != 0 {
				t.Errorf("Decide allocates %v times per packet, want 0", n)
			}
		})
	}
}

func benchmarkDecide(b *testing.B, family string) {
	d, cases := decideCases(b)
	for _, c := range cases {
		if c.name[:2] != family {
			continue
		}
		b.Run(c.name[3:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = d.Decide(c.pkt)
			}
		})
	}
}

func BenchmarkDecideV4(b *testing.B) { benchmarkDecide(b, "v4") }
func BenchmarkDecideV6(b *testing.B) { benchmarkDecide(b, "v6") }
