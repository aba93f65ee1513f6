package lab

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/webfarm/farm/agent/config"
)

// TestNodeConfigKeys decodes NodeConfig's output into the agent's own config
// type: every key must exist there (the agent rejects unknown keys).
func TestNodeConfigKeys(t *testing.T) {
	l := plan(Options{Nodes: 3, Prefix: "x"}.withDefaults(), "x0000", "/run/farmlab/x0000")
	tests := []struct {
		name  string
		extra string
		check func(t *testing.T, c config.Config)
	}{
		{"defaults", "", func(t *testing.T, c config.Config) {
			if c.Node.Name != "web2" || c.Node.ID != 2 || c.Node.Weight != nil {
				t.Errorf("node %+v", c.Node)
			}
			if c.Gossip.Bind != "10.213.0.12:7946" || strings.Join(c.Gossip.Join, ",") != "10.213.0.11:7946,10.213.0.13:7946" {
				t.Errorf("gossip %+v", c.Gossip)
			}
			if c.Gossip.KeyFile != "/run/farmlab/x0000/gossip.key" || c.StateDir != "/run/farmlab/x0000/web2/state" {
				t.Errorf("paths %q %q", c.Gossip.KeyFile, c.StateDir)
			}
			if len(c.VIP) != 2 || c.VIP[0].Address != "10.213.0.100" || c.VIP[1].Address != "fd00:213::100" || c.VIP[1].Mode != "vmac" || c.VIP[0].Interface != "eth0" {
				t.Errorf("vips %+v", c.VIP)
			}
			if len(c.Rule) != 1 || c.Rule[0] != (config.Rule{Proto: "tcp", Ports: "80", Affinity: "ip"}) {
				t.Errorf("rules %+v", c.Rule)
			}
			if c.Console.Listen != "127.0.0.1:9010" {
				t.Errorf("console %+v", c.Console)
			}
		}},
		{"table merged key by key", "[node]\nweight = 0\n[gossip]\nprobe_interval = \"50ms\"\n", func(t *testing.T, c config.Config) {
			if c.Node.Name != "web2" || c.Node.Weight == nil || *c.Node.Weight != 0 {
				t.Errorf("node %+v", c.Node)
			}
			if c.Gossip.ProbeInterval.Milliseconds() != 50 || c.Gossip.Bind == "" {
				t.Errorf("gossip %+v", c.Gossip)
			}
		}},
		{"list of tables replaced", "[[rule]]\nproto = \"tcp\"\nports = \"80,443\"\naffinity = \"network\"\n", func(t *testing.T, c config.Config) {
			if len(c.Rule) != 1 || c.Rule[0].Affinity != "network" || len(c.VIP) != 2 {
				t.Errorf("rules %+v vips %+v", c.Rule, c.VIP)
			}
		}},
		{"new tables added", "[[checker]]\nname = \"web\"\ntype = \"http\"\ntarget = \"http://127.0.0.1/\"\n[app]\nstart = \"/x/start.sh\"\n", func(t *testing.T, c config.Config) {
			if len(c.Checker) != 1 || c.Checker[0].Type != "http" || c.App.Start != "/x/start.sh" || c.Console.Listen == "" {
				t.Errorf("checkers %+v app %+v", c.Checker, c.App)
			}
		}},
		{"vip list emptied", "vip = []\n", func(t *testing.T, c config.Config) {
			if len(c.VIP) != 0 {
				t.Errorf("vips %+v", c.VIP)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := l.NodeConfig(2, tt.extra)
			var c config.Config
			md, err := toml.Decode(text, &c)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, text)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Fatalf("keys unknown to agent/config: %v\n%s", u, text)
			}
			tt.check(t, c)
		})
	}
}

func TestNodeConfigBadExtra(t *testing.T) {
	l := plan(Options{Nodes: 1, Prefix: "x"}.withDefaults(), "x0000", "/tmp/x")
	text := l.NodeConfig(1, "[node\n")
	if !strings.Contains(text, "extra did not parse") || !strings.HasSuffix(text, "[node\n") {
		t.Errorf("bad extra not passed through:\n%s", text)
	}
	if strings.Contains(l.NodeConfig(1, ""), "join = [\"") {
		t.Errorf("a single node joins someone")
	}
}
