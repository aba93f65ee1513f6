package windivert

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

func TestFilter(t *testing.T) {
	v := func(a string) vip.Config { return vip.Config{Addr: netip.MustParseAddr(a), Interface: "Ethernet"} }
	rule := func(proto uint8, ports string) filter.Rule {
		return filter.Rule{Proto: proto, Ports: mustPorts(t, ports)}
	}
	cases := []struct {
		name  string
		vips  []vip.Config
		rules []filter.Rule
		want  string
	}{
		{
			name:  "the example: IPv4 and IPv6 VIP, tcp 80,443, udp 53",
			vips:  exampleSpec(t).VIPs,
			rules: exampleSpec(t).Rules,
			want:  "inbound and (ip.DstAddr == 10.0.0.100 or ipv6.DstAddr == 2001:db8::100) and (tcp.DstPort == 80 or tcp.DstPort == 443 or udp.DstPort == 53)",
		},
		{
			name:  "one VIP, one port: no parentheses",
			vips:  []vip.Config{v("10.0.0.100")},
			rules: []filter.Rule{rule(filter.ProtoTCP, "80")},
			want:  "inbound and ip.DstAddr == 10.0.0.100 and tcp.DstPort == 80",
		},
		{
			name:  "IPv6 only, a range",
			vips:  []vip.Config{v("2001:db8::100")},
			rules: []filter.Rule{rule(filter.ProtoUDP, "5000-5100")},
			want:  "inbound and ipv6.DstAddr == 2001:db8::100 and (udp.DstPort >= 5000 and udp.DstPort <= 5100)",
		},
		{
			name: "VIPs sorted, duplicates and mapped addresses merged, rules of one protocol merged",
			vips: []vip.Config{v("10.0.0.101"), v("::ffff:10.0.0.100"), v("10.0.0.100")},
			rules: []filter.Rule{
				rule(filter.ProtoTCP, "443,8000-8100"), rule(filter.ProtoUDP, "53"), rule(filter.ProtoTCP, "80,8101"),
			},
			want: "inbound and (ip.DstAddr == 10.0.0.100 or ip.DstAddr == 10.0.0.101) and (tcp.DstPort == 80 or tcp.DstPort == 443 or (tcp.DstPort >= 8000 and tcp.DstPort <= 8101) or udp.DstPort == 53)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Filter(Spec{Self: 1, VIPs: c.vips, Rules: c.rules})
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("filter\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestFilterLimits: a port list the compiler would refuse is refused here
// with a message; one just under the limit is accepted.
func TestFilterLimits(t *testing.T) {
	// Every other port, so nothing merges into a range: 1 (inbound) + 1
	// (VIP) + n tests.
	ports := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(filter.PortRange{Lo: uint16(1000 + 2*i), Hi: uint16(1000 + 2*i)}.String())
		}
		return b.String()
	}
	spec := func(n int) Spec {
		return Spec{Self: 1, VIPs: []vip.Config{{Addr: netip.MustParseAddr("10.0.0.100"), Interface: "Ethernet"}},
			Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: mustPorts(t, ports(n))}}}
	}
	if _, err := Filter(spec(FilterMaxTests - 2)); err != nil {
		t.Fatalf("%d tests refused: %v", FilterMaxTests, err) // 1 + 1 + 254
	}
	_, err := Filter(spec(FilterMaxTests - 1))
	if err == nil || !strings.Contains(err.Error(), "over WinDivert's limit") {
		t.Fatalf("%d tests accepted (err %v)", FilterMaxTests+1, err) // 1 + 1 + 255
	}
	if err := spec(FilterMaxTests - 1).Validate(); err == nil || !strings.Contains(err.Error(), "wider port ranges") {
		t.Fatalf("Validate does not report the filter: %v", err)
	}
}

// TestFilterMatchesDecision: every packet the decision balances matches
// the filter's terms, and packets it leaves alone do not: checked by a tiny
// evaluator of the filter's own grammar over parsed packets.
func TestFilterMatchesDecision(t *testing.T) {
	s := exampleSpec(t)
	f, err := Filter(s)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		pkt  []byte
		want bool
	}{
		{pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 80, syn), 0), true},
		{pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 443, ack), 5), true},
		{pkt("2001:db8:1::1", "2001:db8::100", udpHdr(1, 53), 0), true},
		{pkt("192.0.2.1", "10.0.0.100", udpHdr(1, 80), 0), false}, // udp 80 not balanced
		{pkt("192.0.2.1", "10.0.0.100", tcpHdr(1, 53, syn), 0), false},
		{pkt("192.0.2.1", "10.0.0.101", tcpHdr(1, 80, syn), 0), false},
		{pkt("2001:db8:1::1", "2001:db8::101", tcpHdr(1, 443, syn), 0), false},
	}
	for i, c := range cases {
		p, err := filter.ParsePacket(c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if got := evalFilter(t, f, &p); got != c.want {
			t.Errorf("packet %d (%v -> %v:%d): match %v, want %v", i, p.Src, p.Dst, p.DstPort, got, c.want)
		}
	}
}

// evalFilter evaluates the subset of the WinDivert filter language that
// Filter writes (and/or, parentheses, ==, >=, <=, inbound, ip/ipv6.DstAddr,
// tcp/udp.DstPort) for an inbound packet.
func evalFilter(t *testing.T, f string, p *filter.Packet) bool {
	t.Helper()
	toks := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(f))
	pos := 0
	var or func() bool
	atom := func() bool {
		tok := toks[pos]
		pos++
		switch tok {
		case "(":
			v := or()
			pos++ // ")"
			return v
		case "inbound":
			return true
		}
		op, val := toks[pos], toks[pos+1]
		pos += 2
		switch tok {
		case "ip.DstAddr", "ipv6.DstAddr":
			a := netip.MustParseAddr(val)
			return p.Dst.Is4() == (tok == "ip.DstAddr") && op == "==" && p.Dst == a
		case "tcp.DstPort", "udp.DstPort":
			proto := filter.ProtoTCP
			if tok == "udp.DstPort" {
				proto = filter.ProtoUDP
			}
			if p.Proto != proto {
				return false // a field not in the packet fails its test
			}
			port, err := filter.ParsePort(val)
			if err != nil {
				t.Fatal(err)
			}
			switch op {
			case "==":
				return p.DstPort == port
			case ">=":
				return p.DstPort >= port
			case "<=":
				return p.DstPort <= port
			}
		}
		t.Fatalf("evalFilter: unknown test %s %s %s", tok, op, val)
		return false
	}
	and := func() bool {
		v := atom()
		for pos < len(toks) && toks[pos] == "and" {
			pos++
			v = atom() && v
		}
		return v
	}
	or = func() bool {
		v := and()
		for pos < len(toks) && toks[pos] == "or" {
			pos++
			v = and() || v
		}
		return v
	}
	return or()
}
