package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// baseTOML is a small valid config with every section, so each case below
// changes one thing and sees exactly one rule fire.
const baseTOML = `
[node]
name = "web1"
id = 1

[gossip]
bind = "10.0.0.11:7946"
join = ["10.0.0.12:7946"]
key_file = "/etc/farm/gossip.key"

[[vip]]
address = "10.0.0.100"
interface = "eth0"

[[rule]]
proto = "tcp"
ports = "80,443"

[app]
start = "/etc/farm/start.sh"
stop = "/etc/farm/stop.sh"

[[checker]]
name = "web"
type = "http"
target = "http://127.0.0.1/"
`

func baseConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(baseTOML))
	if err != nil {
		t.Fatalf("base config does not parse: %v", err)
	}
	return c
}

func ms(n int) Duration { return Duration{time.Duration(n) * time.Millisecond} }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" = valid; otherwise a substring of the error
	}{
		{"base is valid", func(c *Config) {}, ""},

		// node
		{"name with dots and dash", func(c *Config) { c.Node.Name = "web-1.example" }, ""},
		{"name empty", func(c *Config) { c.Node.Name = "" }, "node.name: required"},
		{"name with space", func(c *Config) { c.Node.Name = "web 1" }, `node.name: "web 1" is not host-name-like`},
		{"name leading dash", func(c *Config) { c.Node.Name = "-web" }, `node.name: "-web"`},
		{"name label too long", func(c *Config) { c.Node.Name = strings.Repeat("a", 64) }, "node.name:"},
		{"id 250", func(c *Config) { c.Node.ID = 250 }, ""},
		{"id 0", func(c *Config) { c.Node.ID = 0 }, "node.id: 0 is out of range 1..250"},
		{"id 300", func(c *Config) { c.Node.ID = 300 }, "node.id: 300 is out of range 1..250"},
		{"weight 0 standby", func(c *Config) { c.Node.Weight = intp(0) }, ""},
		{"weight 1000", func(c *Config) { c.Node.Weight = intp(1000) }, ""},
		{"weight 1001", func(c *Config) { c.Node.Weight = intp(1001) }, "node.weight: 1001 is out of range 0..1000"},
		{"weight negative", func(c *Config) { c.Node.Weight = intp(-1) }, "node.weight: -1 is out of range"},

		// gossip
		{"bind IPv6", func(c *Config) { c.Gossip.Bind = "[2001:db8::11]:7946" }, ""},
		{"bind empty", func(c *Config) { c.Gossip.Bind = "" }, "gossip.bind: required"},
		{"bind without port", func(c *Config) { c.Gossip.Bind = "10.0.0.11" }, `gossip.bind: "10.0.0.11": not ip:port`},
		{"bind host name", func(c *Config) { c.Gossip.Bind = "web1:7946" }, `gossip.bind: "web1:7946": not ip:port`},
		{"bind port 0", func(c *Config) { c.Gossip.Bind = "10.0.0.11:0" }, "gossip.bind: \"10.0.0.11:0\": port 0"},
		{"bind port too big", func(c *Config) { c.Gossip.Bind = "10.0.0.11:70000" }, "gossip.bind:"},
		{"advertise", func(c *Config) { c.Gossip.Advertise = "192.0.2.11:7946" }, ""},
		{"advertise unspecified", func(c *Config) { c.Gossip.Advertise = "0.0.0.0:7946" }, "gossip.advertise: \"0.0.0.0:7946\": peers cannot reach"},
		{"advertise garbage", func(c *Config) { c.Gossip.Advertise = "x" }, `gossip.advertise: "x": not ip:port`},
		{"join names and IPv6", func(c *Config) { c.Gossip.Join = []string{"web2.example:7946", "[2001:db8::12]:7946"} }, ""},
		{"join empty list", func(c *Config) { c.Gossip.Join = nil }, ""},
		{"join without port", func(c *Config) { c.Gossip.Join = []string{"10.0.0.12:7946", "10.0.0.13"} }, `gossip.join[1]: "10.0.0.13": not host:port`},
		{"join port 0", func(c *Config) { c.Gossip.Join = []string{"10.0.0.12:0"} }, "gossip.join[0]: \"10.0.0.12:0\": port 0 is out of range"},
		{"join bad host", func(c *Config) { c.Gossip.Join = []string{"web_2:7946"} }, `gossip.join[0]: "web_2:7946": "web_2" is not an IP address or host name`},
		{"key_file missing", func(c *Config) { c.Gossip.KeyFile = "" }, "gossip.key_file: required: a farm without a key is open to anyone"},
		{"retry_interval 5s", func(c *Config) { c.Gossip.RetryInterval = ms(5000) }, ""},
		{"retry_interval 0", func(c *Config) { c.Gossip.RetryInterval = ms(0) }, "gossip.retry_interval: 0s: must be > 0"},
		{"retry_interval negative", func(c *Config) { c.Gossip.RetryInterval = ms(-1) }, "gossip.retry_interval: -1ms: must be > 0"},
		{"probe_interval 1s", func(c *Config) { c.Gossip.ProbeInterval = ms(1000) }, ""},
		{"probe_interval 0", func(c *Config) { c.Gossip.ProbeInterval = ms(0) }, "gossip.probe_interval: 0s: must be > 0"},
		{"probe_timeout 0", func(c *Config) { c.Gossip.ProbeTimeout = ms(0) }, "gossip.probe_timeout: 0s: must be > 0"},
		{"probe_timeout just below interval", func(c *Config) { c.Gossip.ProbeTimeout = ms(99) }, ""},
		{"probe_timeout equal to interval", func(c *Config) { c.Gossip.ProbeTimeout = ms(100) }, "gossip.probe_timeout: 100ms must be shorter than gossip.probe_interval (100ms)"},
		{"suspicion_mult 5", func(c *Config) { c.Gossip.SuspicionMult = 5 }, ""},
		{"suspicion_mult 0", func(c *Config) { c.Gossip.SuspicionMult = 0 }, "gossip.suspicion_mult: 0: must be >= 1"},
		{"witness ip", func(c *Config) { c.Gossip.Witness = "10.0.0.1" }, ""},
		{"witness ip:port", func(c *Config) { c.Gossip.Witness = "[2001:db8::1]:80" }, ""},
		{"witness host name", func(c *Config) { c.Gossip.Witness = "gateway" }, `gossip.witness: "gateway" is not an IP address or ip:port`},

		// vip
		{"vip none", func(c *Config) { c.VIP = nil }, "vip: at least one [[vip]] is required"},
		{"vip IPv6", func(c *Config) { c.VIP[0].Address = "2001:db8::100" }, ""},
		{"vip not an IP", func(c *Config) { c.VIP[0].Address = "10.0.0.300" }, `vip[0].address: "10.0.0.300" is not an IP address`},
		{"vip empty", func(c *Config) { c.VIP[0].Address = "" }, "vip[0].address: required"},
		{"vip with prefix", func(c *Config) { c.VIP[0].Address = "10.0.0.100/24" }, `vip[0].address: "10.0.0.100/24": write the address without a prefix length`},
		{"vip with zone", func(c *Config) { c.VIP[0].Address = "2001:db8::1%eth0" }, "remove the zone"},
		{"vip mapped", func(c *Config) { c.VIP[0].Address = "::ffff:10.0.0.100" }, "write the IPv4 address as such (10.0.0.100)"},
		{"vip unspecified", func(c *Config) { c.VIP[0].Address = "0.0.0.0" }, "cannot be a VIP"},
		{"vip loopback", func(c *Config) { c.VIP[0].Address = "127.0.0.1" }, "cannot be a VIP"},
		{"vip multicast", func(c *Config) { c.VIP[0].Address = "ff02::1" }, "cannot be a VIP"},
		{"two vips", func(c *Config) {
			c.VIP = append(c.VIP, VIP{Address: "2001:db8::100", Interface: "eth0", Mode: "vmac"})
		}, ""},
		{"duplicate vip", func(c *Config) {
			c.VIP = []VIP{
				{Address: "2001:db8::100", Interface: "eth0", Mode: "vmac"},
				{Address: "2001:DB8:0::100", Interface: "eth1", Mode: "vmac"},
			}
		}, `vip[1].address: "2001:DB8:0::100" duplicates vip[0]`},
		{"vip interface empty", func(c *Config) { c.VIP[0].Interface = "" }, "vip[0].interface: required"},
		{"vip interface with space (Windows)", func(c *Config) { c.VIP[0].Interface = "Ethernet 2" }, ""},
		{"vip mode multicast", func(c *Config) { c.VIP[0].Mode = "multicast" }, ""},
		{"vip mode in capitals", func(c *Config) { c.VIP[0].Mode = "Multicast" }, ""},
		{"vip mode igmp", func(c *Config) { c.VIP[0].Mode = "igmp" }, ""},
		{"vip mode bad", func(c *Config) { c.VIP[0].Mode = "unicast" }, `vip[0].mode: "unicast" is not vmac, multicast or igmp`},

		// rule
		{"rule none", func(c *Config) { c.Rule = nil }, "rule: at least one [[rule]] is required"},
		{"rule udp", func(c *Config) { c.Rule[0].Proto = "udp" }, ""},
		{"rule proto bad", func(c *Config) { c.Rule[0].Proto = "sctp" }, `rule[0].proto: "sctp" is not tcp or udp`},
		{"rule ports ranges", func(c *Config) { c.Rule[0].Ports = "80,443,8000-8100" }, ""},
		{"rule ports open range", func(c *Config) { c.Rule[0].Ports = "80-" }, `rule[0].ports: "80-": a range needs a start and an end`},
		{"rule ports zero", func(c *Config) { c.Rule[0].Ports = "0" }, `rule[0].ports: "0": port 0 is out of range 1..65535`},
		{"rule ports reversed", func(c *Config) { c.Rule[0].Ports = "90-80" }, `rule[0].ports: "90-80": range is reversed (write 80-90)`},
		{"rule ports empty", func(c *Config) { c.Rule[0].Ports = "" }, "rule[0].ports:"},
		{"rule ports repeated", func(c *Config) { c.Rule[0].Ports = "80,443,80" }, `rule[0].ports: "80": overlaps 80`},
		{"rule ports overlapping ranges", func(c *Config) { c.Rule[0].Ports = "8000-8100,8050" }, `rule[0].ports: "8050": overlaps 8000-8100`},
		{"rules same port other proto", func(c *Config) {
			c.Rule = append(c.Rule, Rule{Proto: "udp", Ports: "443", Affinity: "ip"})
		}, ""},
		{"rules overlap", func(c *Config) {
			c.Rule = append(c.Rule, Rule{Proto: "tcp", Ports: "8080,400-500", Affinity: "ip-port"})
		}, "rule[1].ports: 400-500/tcp is already balanced by rule[0] (443)"},
		{"rule affinity ip-port", func(c *Config) { c.Rule[0].Affinity = "ip-port" }, ""},
		{"rule affinity network", func(c *Config) { c.Rule[0].Affinity = "network" }, ""},
		{"rule affinity bad", func(c *Config) { c.Rule[0].Affinity = "client" }, `rule[0].affinity: "client" is not ip, ip-port or network`},

		// filter
		{"queues 16", func(c *Config) { c.Filter.Queues = 16 }, ""},
		{"queues 0", func(c *Config) { c.Filter.Queues = 0 }, "filter.queues: 0 is out of range 1..16"},
		{"queues 17", func(c *Config) { c.Filter.Queues = 17 }, "filter.queues: 17 is out of range 1..16"},
		{"queue 0", func(c *Config) { c.Filter.Queue = 0 }, ""},
		{"queue last possible", func(c *Config) { c.Filter.Queue, c.Filter.Queues = 65534, 2 }, ""},
		{"queue past the end", func(c *Config) { c.Filter.Queue, c.Filter.Queues = 65535, 2 }, "filter.queue: 65535 is out of range 0..65534"},
		{"queue negative", func(c *Config) { c.Filter.Queue = -1 }, "filter.queue: -1 is out of range"},

		// app
		{"app timeout 5m", func(c *Config) { c.App.Timeout = ms(300000) }, ""},
		{"app timeout 0", func(c *Config) { c.App.Timeout = ms(0) }, "app.timeout: 0s: must be > 0"},

		// checker
		{"no checkers", func(c *Config) { c.Checker = nil }, ""},
		{"checker name empty", func(c *Config) { c.Checker[0].Name = "" }, "checker[0].name: required"},
		{"checker name duplicate", func(c *Config) {
			c.Checker = append(c.Checker, Checker{Name: "web", Type: "tcp", Target: "127.0.0.1:80", Interval: ms(1000), Timeout: ms(500), Fall: 2, Rise: 2, Action: "none"})
		}, `checker[1].name: "web" duplicates checker[0]`},
		{"checker type bad", func(c *Config) { c.Checker[0].Type = "ping" }, `checker[0].type: "ping" is not tcp, http, process, script, interface or vip`},
		{"tcp checker", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1:443") }, ""},
		{"tcp target without port", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1") }, `checker[0].target: "127.0.0.1": not host:port`},
		{"tcp target empty", func(c *Config) { c.Checker[0] = tcpChecker("") }, "checker[0].target: required for type tcp"},
		{"process target", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "process", "nginx", 0 }, ""},
		{"process target empty", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "process", "", 0 }, "checker[0].target: required for type process"},
		{"script target empty", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "script", " ", 0 }, "checker[0].target: required for type script"},
		{"interface target empty", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "interface", "", 0 }, "checker[0].target: required for type interface"},
		{"vip checker without target", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "vip", "", 0 }, ""},
		{"vip checker naming a vip", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "vip", "10.0.0.100", 0 }, ""},
		{"vip checker naming another address", func(c *Config) { c.Checker[0].Type, c.Checker[0].Target, c.Checker[0].Expect = "vip", "10.0.0.5", 0 }, `checker[0].target: "10.0.0.5" is not one of the vip addresses (leave it empty to watch the first one)`},
		{"http https URL", func(c *Config) { c.Checker[0].Target = "https://127.0.0.1:8443/health" }, ""},
		{"http not a URL", func(c *Config) { c.Checker[0].Target = "127.0.0.1:80" }, `checker[0].target: "127.0.0.1:80" is not a URL`},
		{"http other scheme", func(c *Config) { c.Checker[0].Target = "ftp://127.0.0.1/" }, `checker[0].target: "ftp://127.0.0.1/" must be an http:// or https:// URL`},
		{"http no host", func(c *Config) { c.Checker[0].Target = "http:///health" }, `checker[0].target: "http:///health" has no host`},
		{"http bad port", func(c *Config) { c.Checker[0].Target = "http://127.0.0.1:99999/" }, "port 99999 is out of range"},
		{"interval minimum", func(c *Config) { c.Checker[0].Interval, c.Checker[0].Timeout = ms(100), ms(50) }, ""},
		{"interval below minimum", func(c *Config) { c.Checker[0].Interval, c.Checker[0].Timeout = ms(50), ms(20) }, "checker[0].interval: 50ms is below the minimum 100ms"},
		{"interval bad, timeout not reported twice", func(c *Config) { c.Checker[0].Interval, c.Checker[0].Timeout = ms(0), ms(0) }, "checker[0].interval: 0s is below"},
		{"timeout 0", func(c *Config) { c.Checker[0].Timeout = ms(0) }, "checker[0].timeout: 0s: must be > 0"},
		{"timeout equal to interval", func(c *Config) { c.Checker[0].Timeout = ms(1000) }, "checker[0].timeout: 1s must be shorter than interval (1s)"},
		{"fall 5 rise 1", func(c *Config) { c.Checker[0].Fall, c.Checker[0].Rise = 5, 1 }, ""},
		{"fall 0", func(c *Config) { c.Checker[0].Fall = 0 }, "checker[0].fall: must be >= 1"},
		{"rise 0", func(c *Config) { c.Checker[0].Rise = 0 }, "checker[0].rise: must be >= 1"},
		{"action stop", func(c *Config) { c.Checker[0].Action = "stop" }, ""},
		{"action none", func(c *Config) { c.Checker[0].Action = "none" }, ""},
		{"action bad", func(c *Config) { c.Checker[0].Action = "reboot" }, `checker[0].action: "reboot" is not restart, stop, wait or none`},
		{"restart without scripts", func(c *Config) { c.App.Stop = "" }, "checker[0].action: restart needs app.start and app.stop"},
		{"stop without scripts", func(c *Config) {
			c.App = App{Timeout: ms(1000), MaxRestarts: 3, RestartWindow: Duration{time.Hour}}
			c.Checker[0].Action = "stop"
		}, ""},
		{"expect 204", func(c *Config) { c.Checker[0].Expect = 204 }, ""},
		{"expect 0 on http", func(c *Config) { c.Checker[0].Expect = 0 }, "checker[0].expect: 0 is not an HTTP status (100..599)"},
		{"expect 600", func(c *Config) { c.Checker[0].Expect = 600 }, "checker[0].expect: 600 is not an HTTP status"},
		{"http extras", func(c *Config) {
			c.Checker[0].Body, c.Checker[0].Host, c.Checker[0].SkipVerify = "ok", "www.example", true
		}, ""},
		{"expect on tcp", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1:80"); c.Checker[0].Expect = 200 }, `checker[0].expect: applies only to type http, not "tcp"`},
		{"body on tcp", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1:80"); c.Checker[0].Body = "ok" }, "checker[0].body: applies only to type http"},
		{"host on tcp", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1:80"); c.Checker[0].Host = "x" }, "checker[0].host: applies only to type http"},
		{"skip_verify on tcp", func(c *Config) { c.Checker[0] = tcpChecker("127.0.0.1:80"); c.Checker[0].SkipVerify = true }, "checker[0].skip_verify: applies only to type http"},

		// console
		{"listen loopback 127/8", func(c *Config) { c.Console.Listen = "127.0.0.2:9010" }, ""},
		{"listen IPv6 loopback", func(c *Config) { c.Console.Listen = "[::1]:9010" }, ""},
		{"listen localhost", func(c *Config) { c.Console.Listen = "localhost:9010" }, ""},
		{"listen public with password", func(c *Config) {
			c.Console.Listen, c.Console.PasswordFile = "10.0.0.11:9010", "/etc/farm/console.pass"
		}, ""},
		{"listen public without password", func(c *Config) { c.Console.Listen = "10.0.0.11:9010" }, "console.password_file: required when console.listen (10.0.0.11:9010) is not a loopback address"},
		{"listen all addresses without password", func(c *Config) { c.Console.Listen = ":9010" }, "console.password_file: required"},
		{"listen host name without password", func(c *Config) { c.Console.Listen = "web1.example:9010" }, "console.password_file: required"},
		{"listen without port", func(c *Config) { c.Console.Listen = "9010" }, `console.listen: "9010" is not host:port`},
		{"listen port 0", func(c *Config) { c.Console.Listen = "127.0.0.1:0" }, `console.listen: "127.0.0.1:0": port 0 is out of range`},
		{"listen bad host", func(c *Config) { c.Console.Listen = "bad host:9010" }, `"bad host" is not an IP address or host name`},

		// state_dir
		{"state_dir windows", func(c *Config) { c.StateDir = `C:\ProgramData\farm` }, ""},
		{"state_dir empty", func(c *Config) { c.StateDir = "" }, "state_dir: required"},
		{"state_dir relative", func(c *Config) { c.StateDir = "var/lib/farm" }, `state_dir: "var/lib/farm" must be an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig(t)
			tt.mutate(c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v\nwant it to contain %q", err, tt.want)
			}
			// One change, one problem: a rule must not drag others along.
			if errs := unjoin(err); len(errs) != 1 {
				t.Errorf("got %d problems, want 1:\n%v", len(errs), err)
			}
			for _, e := range unjoin(err) {
				var fe *FieldError
				if !errors.As(e, &fe) || fe.Key == "" {
					t.Errorf("problem %q is not a *FieldError with a key", e)
				}
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "::ffff:127.0.0.1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.11": false, "web1.example": false, "localhost.example": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func tcpChecker(target string) Checker {
	return Checker{Name: "web", Type: "tcp", Target: target, Interval: ms(1000), Timeout: ms(500), Fall: 2, Rise: 2, Action: "restart"}
}

func intp(n int) *int { return &n }

// TestValidateAllAtOnce checks that Validate reports every problem, not the
// first one, so an operator fixes a file in one pass.
func TestValidateAllAtOnce(t *testing.T) {
	c := baseConfig(t)
	c.Node.ID = 300
	c.VIP = append(c.VIP, VIP{Address: "10.0.0.300", Interface: "eth0", Mode: "vmac"})
	c.Rule[0].Ports = "80-"
	c.Checker[0].Fall = 0
	c.Gossip.KeyFile = ""
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want 5 problems")
	}
	want := []string{
		"node.id: 300 is out of range 1..250",
		"gossip.key_file: required",
		`vip[1].address: "10.0.0.300" is not an IP address`,
		`rule[0].ports: "80-"`,
		"checker[0].fall: must be >= 1",
	}
	got := unjoin(err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got[i], w)
		}
	}
}

// TestSetDefaults covers configs built in code: zero values take defaults.
func TestSetDefaults(t *testing.T) {
	c := &Config{
		Node:    Node{Name: "web1", ID: 1},
		Gossip:  Gossip{Bind: "10.0.0.11:7946", KeyFile: "/k"},
		VIP:     []VIP{{Address: "10.0.0.100", Interface: "eth0"}},
		Rule:    []Rule{{Proto: "tcp", Ports: "80"}},
		Checker: []Checker{{Name: "web", Type: "http", Target: "http://127.0.0.1/", Interval: ms(4000), Action: "none"}},
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() after SetDefaults = %v", err)
	}
	k := c.Checker[0]
	if *c.Node.Weight != DefaultWeight || c.VIP[0].Mode != "vmac" || c.Rule[0].Affinity != "ip" ||
		c.Filter.Queue != DefaultQueue || k.Timeout.Duration != 2*time.Second || k.Expect != 200 || k.Action != "none" {
		t.Errorf("defaults not filled as expected: %+v", c)
	}
}

func TestValidateRestartLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		win  time.Duration
		want string
	}{
		{"defaults", 3, 24 * time.Hour, ""},
		{"zero restarts", 0, time.Hour, "app.max_restarts: 0 is out of range 1..1000"},
		{"window too short", 3, time.Second, "app.restart_window: 1s is too short: at least 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig(t)
			c.App.MaxRestarts, c.App.RestartWindow = tc.max, Duration{tc.win}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
