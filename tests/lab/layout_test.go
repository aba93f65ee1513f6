package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	o := Options{Nodes: 3, ClientAddrs: 6, ClientNets: 2, Prefix: "x"}.withDefaults()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	l := plan(o, "x0a1b", "/run/farmlab/x0a1b")
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"node 1 v4", l.Node(1).Addr4, netip.MustParseAddr("10.213.0.11")},
		{"node 3 v6", l.Node(3).Addr6, netip.MustParseAddr("fd00:213::13")},
		{"node 2 ns", l.Node(2).NS, "x0a1b-web2"},
		{"node 2 mac", l.Node(2).MAC, "02:1a:b0:00:00:02"},
		{"switch ns", l.Switch.NS, "x0a1b-sw"},
		{"client ns", l.Client.NS, "x0a1b-client"},
		{"vip4", l.VIP4, netip.MustParseAddr("10.213.0.100")},
		{"vip6", l.VIP6, netip.MustParseAddr("fd00:213::100")},
		{"client addrs spread over nets", l.ClientAddrs4[:3], []netip.Addr{
			netip.MustParseAddr("10.213.1.1"), netip.MustParseAddr("10.213.2.1"), netip.MustParseAddr("10.213.1.2")}},
		{"client v6 addrs spread over nets", l.ClientAddrs6[:3], []netip.Addr{
			netip.MustParseAddr("fd00:213:0:1::1"), netip.MustParseAddr("fd00:213:0:2::1"), netip.MustParseAddr("fd00:213:0:1::2")}},
		{"sources", len(l.Sources(2)), 4},
		{"all sources", len(l.Sources(0)), 12},
		{"vip url v6", l.VIPURL(l.ClientAddrs6[0]), "http://[fd00:213::100]:80/"},
		{"url v4", URL(l.VIP4, "x"), "http://10.213.0.100:80/x"},
		{"namespaces", l.Namespaces(), []string{"x0a1b-sw", "x0a1b-web1", "x0a1b-web2", "x0a1b-web3", "x0a1b-client"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	for _, a := range append(l.ClientAddrs4, l.ClientAddrs6...) {
		p := l.Subnet4
		if a.Is6() {
			p = l.Subnet6
		}
		if !p.Contains(a) {
			t.Errorf("client address %s outside on-link prefix %s", a, p)
		}
	}
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case []netip.Addr:
		y := b.([]netip.Addr)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	case []string:
		return strings.Join(x, ",") == strings.Join(b.([]string), ",")
	}
	return a == b
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		bad  string
	}{
		{"defaults", Options{}, ""},
		{"upper-case prefix", Options{Prefix: "Lab"}, "prefix"},
		{"long prefix", Options{Prefix: "abcdefghijk"}, "prefix"},
		{"too many nodes", Options{Nodes: 90}, "nodes"},
		{"too many client addrs for one net", Options{ClientAddrs: 255}, "client addrs"},
		{"enough nets", Options{ClientAddrs: 255, ClientNets: 2}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.withDefaults().validate()
			if (err == nil) != (tt.bad == "") || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
				t.Errorf("validate = %v; want error mentioning %q", err, tt.bad)
			}
		})
	}
}

func TestResolveNS(t *testing.T) {
	l := plan(Options{Nodes: 2, Prefix: "x"}.withDefaults(), "x0000", "/tmp/x")
	tests := []struct{ in, want string }{
		{"client", "x0000-client"},
		{"switch", "x0000-sw"},
		{"web2", "x0000-web2"},
		{"1", "x0000-web1"},
		{"x0000-web1", "x0000-web1"},
		{"web3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := l.ResolveNS(tt.in)
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("ResolveNS(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestOwnedBy(t *testing.T) {
	tests := []struct {
		prefix, name, id string
	}{
		{"lab", "lab1a2b", "lab1a2b"},
		{"lab", "lab1a2b-web1", "lab1a2b"},
		{"lab", "laba1a2b", ""},      // prefix "laba"'s lab
		{"lab", "laba1a2b-web1", ""}, // prefix "laba"'s namespace
		{"lab", "lab1a2bc", ""},      // 5 characters after the prefix
		{"lab", "lab1A2b", ""},       // upper case is not ours
		{"lab", "other1a2b-sw", ""},  // another prefix
		{"farmdemo", "farmdemo00ff-client", "farmdemo00ff"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"/"+tt.name, func(t *testing.T) {
			id, ok := ownedBy(tt.prefix, tt.name)
			if id != tt.id || ok != (tt.id != "") {
				t.Errorf("ownedBy(%q, %q) = %q, %v; want %q", tt.prefix, tt.name, id, ok, tt.id)
			}
		})
	}
}
