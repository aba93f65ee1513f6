package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// TestTypedValues checks what the agent takes from a parsed config: the
// typed VIPs, rules, complete checker specs and weight.
func TestTypedValues(t *testing.T) {
	in := strings.Replace(baseTOML, `ports = "80,443"`, `ports = "443, 80"`, 1) + `
[[vip]]
address = "2001:DB8::100"
interface = "eth1"
mode = "Multicast"

[[rule]]
proto = "udp"
ports = "53,5000-5010"
affinity = "network"

[[checker]]
name = "addr"
type = "vip"

[[checker]]
name = "addr6"
type = "vip"
target = "2001:db8:0::100"

[[checker]]
name = "link"
type = "interface"
target = "eth0"
interval = "200ms"
`
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantVIPs := []vip.Config{
		{Addr: netip.MustParseAddr("10.0.0.100"), Interface: "eth0", Mode: vip.ModeVMAC},
		{Addr: netip.MustParseAddr("2001:db8::100"), Interface: "eth1", Mode: vip.ModeMulticast},
	}
	if d := cmp.Diff(wantVIPs, c.VIPs(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("VIPs() (-want +got):\n%s", d)
	}

	rules := c.Rules()
	if len(rules) != 2 {
		t.Fatalf("Rules() = %+v, want 2", rules)
	}
	for i, want := range []struct {
		proto    uint8
		ports    string
		affinity filter.Affinity
	}{{filter.ProtoTCP, "80,443", filter.AffinityIP}, {filter.ProtoUDP, "53,5000-5010", filter.AffinityNetwork}} {
		if r := rules[i]; r.Proto != want.proto || r.Ports.String() != want.ports || r.Affinity != want.affinity {
			t.Errorf("Rules()[%d] = {%d %q %v}, want {%d %q %v}", i, r.Proto, r.Ports, r.Affinity, want.proto, want.ports, want.affinity)
		}
	}

	wantSpecs := []checkers.Spec{
		{Name: "web", Type: "http", Target: "http://127.0.0.1/", Interval: time.Second, Timeout: 500 * time.Millisecond,
			Fall: 2, Rise: 2, Action: "restart", Expect: 200, VIP: "10.0.0.100"},
		// A vip checker without a target watches the first VIP, and waits.
		{Name: "addr", Type: "vip", Target: "10.0.0.100", Interval: time.Second, Timeout: 500 * time.Millisecond,
			Fall: 2, Rise: 2, Action: "wait", VIP: "10.0.0.100"},
		{Name: "addr6", Type: "vip", Target: "2001:db8::100", Interval: time.Second, Timeout: 500 * time.Millisecond,
			Fall: 2, Rise: 2, Action: "wait", VIP: "10.0.0.100"},
		{Name: "link", Type: "interface", Target: "eth0", Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond,
			Fall: 2, Rise: 2, Action: "wait", VIP: "10.0.0.100"},
	}
	if d := cmp.Diff(wantSpecs, c.CheckerSpecs()); d != "" {
		t.Errorf("CheckerSpecs() (-want +got):\n%s", d)
	}
	if w := c.Weight(); w != DefaultWeight {
		t.Errorf("Weight() = %d, want %d", w, DefaultWeight)
	}

	// The accessors hand out copies.
	c.VIPs()[0].Interface = "changed"
	c.CheckerSpecs()[0].Name = "changed"
	if c.VIPs()[0].Interface != "eth0" || c.CheckerSpecs()[0].Name != "web" {
		t.Error("changing a returned slice changed the config")
	}
}

// TestDefaultAction checks the documented rule for checker.action: restart
// when there are scripts to restart with, wait otherwise and for what a
// restart cannot fix; an explicit value is kept.
func TestDefaultAction(t *testing.T) {
	noScripts := strings.Replace(baseTOML, "[app]\nstart = \"/etc/farm/start.sh\"\nstop = \"/etc/farm/stop.sh\"\n", "", 1)
	onlyStart := strings.Replace(baseTOML, "stop = \"/etc/farm/stop.sh\"\n", "", 1)
	checker := func(typ, target, extra string) string {
		return "[[checker]]\nname = \"x\"\ntype = \"" + typ + "\"\ntarget = \"" + target + "\"\n" + extra
	}
	tests := []struct {
		name, in, want string
	}{
		{"http with scripts", baseTOML, "restart"},
		{"http without scripts", noScripts, "wait"},
		{"http with only a start script", onlyStart, "wait"},
		{"tcp with scripts", baseTOML + checker("tcp", "127.0.0.1:80", ""), "restart"},
		{"process with scripts", baseTOML + checker("process", "nginx", ""), "restart"},
		{"script with scripts", baseTOML + checker("script", "/bin/true", ""), "restart"},
		{"interface with scripts", baseTOML + checker("interface", "eth0", ""), "wait"},
		{"vip with scripts", baseTOML + checker("vip", "10.0.0.100", ""), "wait"},
		{"explicit restart on interface", baseTOML + checker("interface", "eth0", "action = \"restart\"\n"), "restart"},
		{"explicit none", noScripts + checker("tcp", "127.0.0.1:80", "action = \"none\"\n"), "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			k := c.Checker[len(c.Checker)-1]
			specs := c.CheckerSpecs()
			if k.Action != tt.want || specs[len(specs)-1].Action != tt.want {
				t.Errorf("action = %q (spec %q), want %q", k.Action, specs[len(specs)-1].Action, tt.want)
			}
		})
	}
	// An explicit restart without scripts is still refused.
	_, err := Parse([]byte(noScripts + checker("tcp", "127.0.0.1:80", "action = \"restart\"\n")))
	checkErr(t, err, "checker[1].action: restart needs app.start and app.stop")
}

// TestTypedValuesInCode covers configs built in code: SetDefaults derives the
// typed values; Validate re-derives them after a change and clears them
// while the config has a problem.
func TestTypedValuesInCode(t *testing.T) {
	c := &Config{
		Node:    Node{Name: "web1", ID: 1, Weight: intp(0)},
		Gossip:  Gossip{Bind: "10.0.0.11:7946", KeyFile: "/k"},
		VIP:     []VIP{{Address: "10.0.0.100", Interface: "eth0"}},
		Rule:    []Rule{{Proto: "tcp", Ports: "80"}},
		Checker: []Checker{{Name: "port", Type: "tcp", Target: "127.0.0.1:80"}},
	}
	c.SetDefaults()
	if len(c.VIPs()) != 1 || len(c.Rules()) != 1 || c.Rules()[0].Ports.String() != "80" || c.Weight() != 0 {
		t.Fatalf("after SetDefaults: VIPs %+v, Rules %+v, Weight %d", c.VIPs(), c.Rules(), c.Weight())
	}
	if s := c.CheckerSpecs(); len(s) != 1 || s[0].Action != "wait" || s[0].Timeout != 500*time.Millisecond || s[0].Fall != checkers.DefaultFall {
		t.Fatalf("after SetDefaults: CheckerSpecs %+v", s)
	}

	c.Rule[0].Ports = "80,8080"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Rules()[0].Ports.String(); got != "80,8080" {
		t.Errorf("after Validate, Rules()[0].Ports = %q, want the changed list", got)
	}

	c.Rule[0].Ports = "80,80"
	if err := c.Validate(); err == nil {
		t.Fatal("Validate accepted a repeated port")
	}
	if c.VIPs() != nil || c.Rules() != nil || c.CheckerSpecs() != nil || c.Weight() != 0 {
		t.Error("an invalid config still has typed values")
	}
}
