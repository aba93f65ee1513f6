package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/webfarm/farm/filter"
)

// modelOnly compares the file model and ignores the typed values derived
// from it (TestTypedValues covers those).
var modelOnly = cmpopts.IgnoreUnexported(Config{})

// withTyped compares the file model and the typed values.
var withTyped = cmp.Options{
	cmp.AllowUnexported(Config{}, typed{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b *filter.PortSet) bool { return a.String() == b.String() }),
}

func TestParseDefaults(t *testing.T) {
	const in = `
[node]
name = "web1"
id = 7
[gossip]
bind = "10.0.0.11:7946"
key_file = "/etc/farm/gossip.key"
[[vip]]
address = "10.0.0.100"
interface = "eth0"
[[rule]]
proto = "tcp"
ports = "80"
[[checker]]
name = "web"
type = "http"
target = "http://127.0.0.1/"
interval = "4s"
action = "none"
[[checker]]
name = "port"
type = "tcp"
target = "127.0.0.1:80"
action = "stop"
`
	got, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Node: Node{Name: "web1", ID: 7, Weight: intp(100), DrainTimeout: Duration{DefaultDrainTimeout}},
		Gossip: Gossip{
			Bind: "10.0.0.11:7946", KeyFile: "/etc/farm/gossip.key",
			RetryInterval: ms(2000), ProbeInterval: ms(100), ProbeTimeout: ms(50), SuspicionMult: 2, HandoffDelay: ms(300),
			SwitchLead: ms(500), SwitchMargin: ms(5),
		},
		VIP:    []VIP{{Address: "10.0.0.100", Interface: "eth0", Mode: "vmac"}},
		Rule:   []Rule{{Proto: "tcp", Ports: "80", Affinity: "ip"}},
		Filter: Filter{Engine: "kernel", Queue: 4200, Queues: 1, ResetWindow: ms(30000)},
		App:    App{Timeout: ms(60000), MaxRestarts: 3, RestartWindow: Duration{24 * time.Hour}},
		Checker: []Checker{
			// timeout defaults to interval/2; expect to 200 for http only.
			{Name: "web", Type: "http", Target: "http://127.0.0.1/", Interval: ms(4000), Timeout: ms(2000), Fall: 2, Rise: 2, Action: "none", Expect: 200},
			{Name: "port", Type: "tcp", Target: "127.0.0.1:80", Interval: ms(1000), Timeout: ms(500), Fall: 2, Rise: 2, Action: "stop"},
		},
		Console:  Console{Listen: "127.0.0.1:9010"},
		Log:      Log{Format: "text", Level: "info"},
		StateDir: "/var/lib/farm",
	}
	if d := cmp.Diff(want, got, modelOnly); d != "" {
		t.Errorf("Parse (-want +got):\n%s", d)
	}
}

// TestParseExplicitValues checks that defaults fill only absent keys: an
// explicit zero is kept, then accepted or reported.
func TestParseExplicitValues(t *testing.T) {
	tests := []struct {
		name  string
		extra string // appended to baseTOML
		want  string // "" = valid
		check func(t *testing.T, c *Config)
	}{
		{"queue 0 is kept", "[filter]\nqueue = 0\n", "", func(t *testing.T, c *Config) {
			if c.Filter.Queue != 0 {
				t.Errorf("filter.queue = %d, want 0", c.Filter.Queue)
			}
		}},
		{"queues 0 is reported", "[filter]\nqueues = 0\n", "filter.queues: 0 is out of range 1..16", nil},
		{"explicit fall 0", "[[checker]]\nname = \"b\"\ntype = \"tcp\"\ntarget = \"127.0.0.1:80\"\nfall = 0\n", "checker[1].fall: must be >= 1", nil},
		{"explicit timeout 0s", "[[checker]]\nname = \"b\"\ntype = \"tcp\"\ntarget = \"127.0.0.1:80\"\ntimeout = \"0s\"\n", "checker[1].timeout: 0s: must be > 0", nil},
		{"explicit empty mode", "[[vip]]\naddress = \"10.0.0.101\"\ninterface = \"eth0\"\nmode = \"\"\n", `vip[1].mode: "" is not vmac, multicast or igmp`, nil},
		{"explicit empty listen", "[console]\nlisten = \"\"\n", `console.listen: "" is not host:port`, nil},
		{"explicit expect 0 on http", "[[checker]]\nname = \"b\"\ntype = \"http\"\ntarget = \"http://x/\"\nexpect = 0\n", "checker[1].expect: 0 is not an HTTP status", nil},
		{"second checker gets its own defaults", "[[checker]]\nname = \"b\"\ntype = \"tcp\"\ntarget = \"127.0.0.1:80\"\ninterval = \"10s\"\n", "", func(t *testing.T, c *Config) {
			if k := c.Checker[1]; k.Timeout.Duration != 5*time.Second || k.Fall != 2 || k.Expect != 0 {
				t.Errorf("checker[1] = %+v, want timeout 5s, fall 2, expect 0", k)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(baseTOML + tt.extra))
			checkErr(t, err, tt.want)
			if err == nil && tt.check != nil {
				tt.check(t, c)
			}
		})
	}

	// Keys inside [node] and [gossip] cannot be appended after other tables,
	// so these cases rewrite the base.
	rewrite := []struct {
		name, old, new, want string
	}{
		{"weight 0 is kept", "id = 1\n", "id = 1\nweight = 0\n", ""},
		{"suspicion_mult 0 is reported", "key_file", "suspicion_mult = 0\nkey_file", "gossip.suspicion_mult: 0: must be >= 1"},
		{"probe_timeout 0s is reported", "key_file", "probe_timeout = \"0s\"\nkey_file", "gossip.probe_timeout: 0s: must be > 0"},
	}
	for _, tt := range rewrite {
		t.Run("rewrite/"+tt.name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(baseTOML, tt.old, tt.new, 1)))
			checkErr(t, err, tt.want)
			if err == nil && tt.name == "weight 0 is kept" && *c.Node.Weight != 0 {
				t.Errorf("node.weight = %d, want 0", *c.Node.Weight)
			}
		})
	}
}

// TestParseInlineTables checks defaults and errors when arrays of tables are
// written inline, where the decoder gives no [[header]] to count.
func TestParseInlineTables(t *testing.T) {
	base := strings.Replace(baseTOML, "[[checker]]\nname = \"web\"\ntype = \"http\"\ntarget = \"http://127.0.0.1/\"\n", "", 1)
	tests := []struct{ name, extra, want string }{
		{"defaults filled", `checker = [{name = "a", type = "tcp", target = "127.0.0.1:80"}, {name = "b", type = "tcp", target = "127.0.0.1:81"}]`, ""},
		{"explicit zero kept", `checker = [{name = "a", type = "tcp", target = "127.0.0.1:80"}, {name = "b", type = "tcp", target = "127.0.0.1:81", rise = 0}]`, "checker[1].rise: must be >= 1"},
		{"unknown key", `checker = [{name = "a", type = "tcp", target = "127.0.0.1:80", fal = 3}]`, `unknown key "checker.fal" (did you mean "fall"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Top-level keys must come before the first table.
			c, err := Parse([]byte(tt.extra + "\n" + base))
			checkErr(t, err, tt.want)
			if err == nil && (c.Checker[1].Fall != 2 || c.Checker[1].Interval.Duration != time.Second) {
				t.Errorf("checker[1] = %+v, want defaults", c.Checker[1])
			}
		})
	}
}

func TestParseUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every unknown-key error, in file order
	}{
		{"typo in array of tables", strings.Replace(baseTOML, "address =", "adress =", 1),
			[]string{`unknown key "vip[0].adress" (did you mean "address"?)`}},
		{"typo in second vip", baseTOML + "[[vip]]\naddress = \"10.0.0.101\"\ninterface = \"eth0\"\n[[vip]]\nadress = \"10.0.0.102\"\ninterface = \"eth0\"\n",
			[]string{`unknown key "vip[2].adress" (did you mean "address"?)`}},
		{"typo in a table", strings.Replace(baseTOML, "id = 1", "id = 1\nwieght = 5", 1),
			[]string{`unknown key "node.wieght" (did you mean "weight"?)`}},
		{"top-level typo", "stat_dir = \"/x\"\n" + baseTOML,
			[]string{`unknown key "stat_dir" (did you mean "state_dir"?)`}},
		{"unknown table listed once", baseTOML + "[vipp]\naddress = \"x\"\nmode = \"vmac\"\n",
			[]string{`unknown key "vipp" (did you mean "vip"?)`}},
		{"no suggestion when nothing is close", strings.Replace(baseTOML, "id = 1", "id = 1\ncolour = \"red\"", 1),
			[]string{`unknown key "node.colour"`}},
		{"sub-table of a known table", baseTOML + "[console.tls]\ncert = \"x\"\n",
			[]string{`unknown key "console.tls"`}},
		{"several", strings.Replace(strings.Replace(baseTOML, "ports =", "port =", 1), "[app]\n", "[app]\nstrat = \"x\"\n", 1),
			[]string{`unknown key "rule[0].port" (did you mean "ports"?)`, `unknown key "app.strat" (did you mean "start"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("Parse accepted unknown keys")
			}
			var got []string
			for _, e := range unjoin(err) {
				if strings.HasPrefix(e.Error(), "unknown key") {
					got = append(got, e.Error())
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("unknown-key errors (-want +got):\n%s\nfull error:\n%v", d, err)
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings
	}{
		{"unterminated string", "[node]\nname = \"web1\nid = 1\n", []string{"line 2"}},
		{"unclosed table header", "[node]\nid = 1\n[gossip\n", []string{"line 3, column 8"}},
		{"duplicate key", "[node]\nid = 1\nid = 2\n", []string{"line 3, column 1", "node.id"}},
		{"unexpected comma", "[gossip]\njoin = [\"a:1\",\n,]\n", []string{"line 3, column 1", "comma"}},
		{"wrong type", "[node]\nname = \"web1\"\nid = \"one\"\n", []string{"line 3", "node.id", "incompatible types"}},
		{"bad duration", "[gossip]\nprobe_interval = \"5x\"\n", []string{"line 2", "gossip.probe_interval", `unknown unit "x"`}},
		{"duration without unit", "[gossip]\nprobe_interval = 5\n", []string{"line 2", "missing unit"}},
		{"integer overflow", "[node]\nid = 99999999999999999999\n", []string{"line 2", "out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("Parse accepted bad TOML")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestParseAllProblems checks that unknown keys and validation problems come
// out together, so one `farm check` run lists everything to fix.
func TestParseAllProblems(t *testing.T) {
	in := strings.NewReplacer(
		"id = 1", "id = 300",
		`ports = "80,443"`, `ports = "80-"`,
		`target = "http://127.0.0.1/"`, "target = \"http://127.0.0.1/\"\nfall = 0",
	).Replace(baseTOML) + "[[vip]]\nadress = \"10.0.0.300\"\ninterface = \"eth0\"\n"
	_, err := Parse([]byte(in))
	want := []string{
		`unknown key "vip[1].adress" (did you mean "address"?)`,
		"node.id: 300 is out of range 1..250",
		"vip[1].address: required",
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

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", baseTOML)
	one := write("one.toml", strings.Replace(baseTOML, "id = 1", "id = 300", 1))
	two := write("two.toml", strings.Replace(strings.Replace(baseTOML, "id = 1", "id = 300", 1), "eth0", "", 1))
	missing := filepath.Join(dir, "missing.toml")

	tests := []struct {
		name, path, want string
	}{
		{"good", good, ""},
		{"one problem", one, "config " + one + ": node.id: 300 is out of range 1..250"},
		{"two problems", two, "config " + two + ": 2 problems:\nnode.id: 300 is out of range 1..250 (a unique, stable number per node)\nvip[0].interface: required"},
		{"missing file", missing, "read config: open " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path)
			checkErr(t, err, tt.want)
			if err == nil && c.Node.Name != "web1" {
				t.Errorf("Load gave node.name %q", c.Node.Name)
			}
		})
	}
}

func TestEffectiveRoundTrip(t *testing.T) {
	inputs := map[string]string{
		"base": baseTOML,
		"extras": strings.Replace(baseTOML, "[app]\n", "[app]\ntimeout = \"90s\"\n", 1) +
			"[[checker]]\nname = \"tls\"\ntype = \"http\"\ntarget = \"https://127.0.0.1/\"\nbody = \"ok\"\nhost = \"www.example\"\nskip_verify = true\nexpect = 204\n" +
			"[[checker]]\nname = \"vip\"\ntype = \"vip\"\naction = \"none\"\n" +
			"[filter]\nqueue = 0\nqueues = 4\n",
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out := c.Effective()
			back, err := Parse([]byte(out))
			if err != nil {
				t.Fatalf("Parse(Effective()) = %v\n%s", err, out)
			}
			if d := cmp.Diff(c, back, withTyped); d != "" {
				t.Errorf("round trip (-first +second):\n%s\n%s", d, out)
			}
			// Effective shows the defaults it filled.
			for _, w := range []string{"weight = 100", `probe_interval = "100ms"`, `mode = "vmac"`, `state_dir = "/var/lib/farm"`} {
				if !strings.Contains(out, w) {
					t.Errorf("Effective() lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{time.Second, "1s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{150 * time.Minute, "2h30m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, _ := Duration{tt.d}.MarshalText()
			if string(b) != tt.want {
				t.Fatalf("MarshalText(%v) = %q, want %q", tt.d, b, tt.want)
			}
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back.Duration != tt.d {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", b, back.Duration, err, tt.d)
			}
		})
	}
}

// TestExampleFile keeps farm.example.toml (the README's example) valid and
// complete: every key the agent knows appears in it, set or commented out.
func TestExampleFile(t *testing.T) {
	path := filepath.Join("..", "..", "farm.example.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if len(c.Gossip.Join) != 2 || len(c.VIP) == 0 || len(c.Checker) == 0 || c.Gossip.Witness == "" {
		t.Errorf("the example should show a 3-node farm with a witness and checkers: %+v", c)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range schemaKeys(reflect.TypeOf(Config{}), "") {
		leaf := key[strings.LastIndex(key, ".")+1:]
		re := regexp.MustCompile(`(?m)^#?\s*` + regexp.QuoteMeta(leaf) + `\s*=.*#`)
		if !re.Match(text) {
			t.Errorf("farm.example.toml does not show %s with a comment", key)
		}
	}
}

// TestDesignExample keeps the example in DESIGN.md (the contract) valid.
func TestDesignExample(t *testing.T) {
	const design = `
[node]
name = "web1"            # unique in the farm
id = 1                   # unique small integer (1..250), stable: it tags this node's flows
weight = 100             # share of buckets relative to the others; 0 = standby

[gossip]
bind = "10.0.0.11:7946"
join = ["10.0.0.12:7946", "10.0.0.13:7946"]
key_file = "/etc/farm/gossip.key"      # 32-byte key, base64; nodes without it cannot join

[[vip]]
address = "10.0.0.100"   # IPv4 or IPv6
interface = "eth0"
mode = "vmac"            # vmac (flooded unicast virtual MAC) | multicast

[[rule]]
proto = "tcp"            # tcp | udp
ports = "80,443"         # list or ranges
affinity = "ip"          # ip (client IP) | ip-port (none) | network (/24, /64)

[app]
start = "/etc/farm/scripts/start.sh"
stop  = "/etc/farm/scripts/stop.sh"

[[checker]]
name = "web"
type = "http"            # tcp | http | process | script
target = "http://127.0.0.1/"
interval = "1s"
timeout = "500ms"
fall = 2                 # consecutive failures before failed
rise = 2                 # consecutive successes before passing
action = "restart"       # restart (stop+start scripts, then back in) | stop (leave the farm) | none

[console]
listen = "127.0.0.1:9010"
password_file = "/etc/farm/console.pass"   # bcrypt; required when listen is not loopback
`
	if _, err := Parse([]byte(design)); err != nil {
		t.Fatalf("DESIGN.md's example does not parse: %v", err)
	}
}

// schemaKeys lists every leaf key of the config, dotted.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if !f.IsExported() || name == "" || name == "-" {
			continue // not a key (the typed values)
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) {
			keys = append(keys, schemaKeys(ft, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

// checkErr fails unless err is nil and want is "", or err contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error = %v\nwant it to contain %q", err, want)
	}
}
