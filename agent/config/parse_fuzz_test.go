package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks what `farm check` and the agent rely on, for any file:
//   - Parse never panics;
//   - every problem it reports names a key (a *FieldError, an unknown key,
//     the decoder's "last key") or a line (a syntax or type error), so the
//     operator knows where to look;
//   - a config that parses prints (Effective) as a file that parses back to
//     the very same config, typed values included, and prints the same
//     again (what `farm check` shows is what the agent runs).
func FuzzParse(f *testing.F) {
	seeds := []string{
		baseTOML,
		strings.Replace(baseTOML, "[app]\n", "[app]\ntimeout = \"90s\"\nmax_restarts = 0\n", 1) +
			"[[checker]]\nname = \"tls\"\ntype = \"http\"\ntarget = \"https://127.0.0.1/\"\nbody = \"ok\"\nhost = \"www.example\"\nskip_verify = true\nexpect = 204\n" +
			"[[checker]]\nname = \"vip\"\ntype = \"vip\"\naction = \"none\"\n" +
			"[filter]\nengine = \"kernel\"\nqueue = 0\nqueues = 4\nreset_window = \"0s\"\n",
		strings.Replace(baseTOML, `address = "10.0.0.100"`, `address = "2001:db8::100"`+"\nmode = \" Multicast \"", 1) +
			"[[rule]]\nproto = \"udp\"\nports = \"53,5000-5100\"\naffinity = \"network\"\n" +
			"[console]\nlisten = \"[::]:9010\"\npassword_file = \"/etc/farm/console.pass\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\nmetrics_public = true\n" +
			"[log]\nformat = \"json\"\nlevel = \"debug\"\n",
		strings.Replace(baseTOML, "id = 1", "id = 1\nweight = 0\ndrain_timeout = \"1h30m\"", 1) +
			"[gossip.extra]\nx = 1\n",
		"node = { name = \"web1\", id = 1 }\nvip = [{ address = \"10.0.0.100\", interface = \"eth0\" }]\n",
		"[node]\nname = \"web1\nid = 1\n",
		"[node]\nid = 1\nid = 2\n",
		"[gossip]\nprobe_interval = 5\n",
		"[node]\nid = 99999999999999999999\n",
		"[[vip]]\nadress = \"10.0.0.300\"\n",
		"state_dir = \"relative\"\n",
		"",
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "farm.example.toml")); err == nil {
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			for _, e := range unjoin(err) {
				var fe *FieldError
				switch msg := e.Error(); {
				case errors.As(e, &fe):
					if fe.Key == "" {
						t.Fatalf("problem without a key: %q", msg)
					}
				case strings.HasPrefix(msg, "line "), strings.HasPrefix(msg, "unknown key "),
					strings.Contains(msg, "(last key "): // a type error the decoder gives without its line
				default:
					t.Fatalf("problem names neither a key nor a line: %q\ninput:\n%s", msg, data)
				}
			}
			return
		}
		out := c.Effective()
		back, err := Parse([]byte(out))
		if err != nil {
			t.Fatalf("the effective config does not parse: %v\ninput:\n%s\neffective:\n%s", err, data, out)
		}
		if d := cmp.Diff(c, back, withTyped); d != "" {
			t.Fatalf("the effective config parses to another config (-first +second):\n%s\ninput:\n%s\neffective:\n%s", d, data, out)
		}
		if again := back.Effective(); again != out {
			t.Fatalf("the effective config prints differently the second time:\n%s\nthen:\n%s", out, again)
		}
	})
}

// FuzzParseValues fuzzes the values of a valid file rather than its syntax,
// so that most inputs reach validation and the Effective round trip:
// strings where strings go (names, addresses, ports, targets, durations,
// modes) and integers where integers go.
func FuzzParseValues(f *testing.F) {
	f.Add("web1", "10.0.0.100", "80,443", "http", "http://127.0.0.1/", "1s", "500ms", "vmac", "ip", int64(1), int64(100), int64(2))
	f.Add("web-2.example", "2001:db8::100", "1-65535", "tcp", "127.0.0.1:80", "1m", "0s", "multicast", "network", int64(250), int64(0), int64(1))
	f.Add("x", "10.0.0.300", "80-", "script", "/bin/true --x", "1h2m3.5s", "-1s", "VMAC ", "ip-port", int64(0), int64(1001), int64(0))
	f.Add("x", "fe80::1%eth0", "0", "vip", "", "100ms", "99ms", "", "", int64(-1), int64(-5), int64(-1))
	f.Add("web1", "10.0.0.100", "80", "process", "/run/nginx.pid", "1.5s", "1µs", "vmac", "ip", int64(7), int64(1000), int64(1000))
	f.Fuzz(func(t *testing.T, name, address, ports, ctype, target, interval, timeout, mode, affinity string, id, weight, fall int64) {
		var b strings.Builder
		b.WriteString("[node]\nname = " + tomlString(name) + "\nid = " + itoa(id) + "\nweight = " + itoa(weight) + "\n")
		b.WriteString("[gossip]\nbind = \"10.0.0.11:7946\"\nkey_file = \"/etc/farm/gossip.key\"\n")
		b.WriteString("[[vip]]\naddress = " + tomlString(address) + "\ninterface = \"eth0\"\nmode = " + tomlString(mode) + "\n")
		b.WriteString("[[rule]]\nproto = \"tcp\"\nports = " + tomlString(ports) + "\naffinity = " + tomlString(affinity) + "\n")
		b.WriteString("[app]\nstart = \"/etc/farm/start.sh\"\nstop = \"/etc/farm/stop.sh\"\n")
		b.WriteString("[[checker]]\nname = \"c\"\ntype = " + tomlString(ctype) + "\ntarget = " + tomlString(target) +
			"\ninterval = " + tomlString(interval) + "\ntimeout = " + tomlString(timeout) + "\nfall = " + itoa(fall) + "\n")
		data := []byte(b.String())
		c, err := Parse(data)
		if err != nil {
			for _, e := range unjoin(err) {
				var fe *FieldError
				if msg := e.Error(); !errors.As(e, &fe) && !strings.HasPrefix(msg, "line ") {
					t.Fatalf("problem names neither a key nor a line: %q\ninput:\n%s", msg, data)
				}
			}
			return
		}
		out := c.Effective()
		back, err := Parse([]byte(out))
		if err != nil {
			t.Fatalf("the effective config does not parse: %v\ninput:\n%s\neffective:\n%s", err, data, out)
		}
		if d := cmp.Diff(c, back, withTyped); d != "" {
			t.Fatalf("the effective config parses to another config (-first +second):\n%s\ninput:\n%s\neffective:\n%s", d, data, out)
		}
	})
}

// tomlString writes s as a TOML basic string (TOML's escapes are not Go's:
// no \x, and \u needs a valid scalar value).
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// FuzzParseStrictKeys checks the other half of "unknown keys are an error"
// (DESIGN.md): a file that parses uses only the keys of the schema, spelled
// as they are documented. TOML keys are case-sensitive; a key the decoder
// matched to a field by another spelling is one `farm check` should name.
func FuzzParseStrictKeys(f *testing.F) {
	f.Add([]byte(baseTOML))
	f.Add([]byte(strings.Replace(baseTOML, "[app]\n", "[app]\ntimeout = \"90s\"\n", 1) + "[filter]\nengine = \"kernel\"\n[log]\nlevel = \"debug\"\n"))
	f.Add([]byte("node = { name = \"web1\", id = 1 }\n" + strings.SplitN(baseTOML, "[gossip]", 2)[1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse(data); err != nil {
			return
		}
		var raw map[string]any
		if _, err := toml.Decode(string(data), &raw); err != nil {
			t.Fatalf("Parse accepted what the generic decoder refuses: %v", err)
		}
		if k := foreignKey(reflect.TypeOf(Config{}), raw, ""); k != "" {
			t.Fatalf("Parse accepted key %q, which is not in the schema:\n%s", k, data)
		}
	})
}

// foreignKey returns the first key of v (a decoded table) that t's TOML
// schema does not have, spelled exactly; "" when there is none.
func foreignKey(t reflect.Type, v any, prefix string) string {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			f, ok := fieldByKey(t, k)
			if !ok {
				return prefix + k
			}
			ft := f.Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) {
				if bad := foreignKey(ft, sub, prefix+k+"."); bad != "" {
					return bad
				}
			}
		}
	case []map[string]any:
		for i, m := range v {
			if bad := foreignKey(t, m, fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i)); bad != "" {
				return bad
			}
		}
	case []any:
		for i, m := range v {
			if bad := foreignKey(t, m, fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i)); bad != "" {
				return bad
			}
		}
	}
	return ""
}
