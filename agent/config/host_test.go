package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hostFixture is a temporary directory holding everything a valid config
// points at on this host: a key (0600), a password file, two scripts and a
// state directory. "lo" is the interface every Linux host has.
type hostFixture struct {
	dir string
	t   *testing.T
}

func newHostFixture(t *testing.T) *hostFixture {
	t.Helper()
	if _, err := os.Stat("/sys/class/net/lo"); runtime.GOOS != "linux" || err != nil {
		t.Skip("uses the Linux loopback interface lo")
	}
	f := &hostFixture{dir: t.TempDir(), t: t}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f.write("gossip.key", key+"\n", 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f.write("console.pass", string(hash)+"\n", 0o600)
	f.write("start.sh", "#!/bin/sh\nexit 0\n", 0o755)
	f.write("stop.sh", "#!/bin/sh\nexit 0\n", 0o755)
	if err := os.Mkdir(f.path("state"), 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *hostFixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *hostFixture) write(name, content string, mode os.FileMode) string {
	f.t.Helper()
	p := f.path(name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by the umask
		f.t.Fatal(err)
	}
	return p
}

// config returns a valid config whose host-facing keys point at the fixture.
func (f *hostFixture) config() *Config {
	f.t.Helper()
	// state_dir is a top-level key: it comes before the first table.
	in := "state_dir = \"" + f.path("state") + "\"\n" + strings.NewReplacer(
		`key_file = "/etc/farm/gossip.key"`, `key_file = "`+f.path("gossip.key")+`"`,
		`interface = "eth0"`, `interface = "lo"`,
		`start = "/etc/farm/start.sh"`, `start = "`+f.path("start.sh")+`"`,
		`stop = "/etc/farm/stop.sh"`, `stop = "`+f.path("stop.sh")+`"`,
	).Replace(baseTOML) + "\n[console]\npassword_file = \"" + f.path("console.pass") + "\"\n"
	c, err := Parse([]byte(in))
	if err != nil {
		f.t.Fatalf("fixture config does not parse: %v\n%s", err, in)
	}
	return c
}

func TestCheckHost(t *testing.T) {
	f := newHostFixture(t)
	unix := runtime.GOOS != "windows"
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" = no problem; otherwise the whole "key: message" starts with it
		count  int    // of problems, when not 1
		skip   bool
	}{
		{name: "all present", mutate: func(c *Config) {}},

		// gossip.key_file
		{name: "key missing", mutate: func(c *Config) { c.Gossip.KeyFile = f.path("nokey") },
			want: "gossip.key_file: " + f.path("nokey") + ": cannot read: no such file or directory (farm keygen makes a key)"},
		{name: "key garbage", mutate: func(c *Config) { c.Gossip.KeyFile = f.write("garbage.key", "hello world\n", 0o600) },
			want: "gossip.key_file: " + f.path("garbage.key") + ": not base64"},
		{name: "key 8 bytes", mutate: func(c *Config) { c.Gossip.KeyFile = f.write("short.key", "AAAAAAAAAAA=\n", 0o600) },
			want: "gossip.key_file: " + f.path("short.key") + ": 8 bytes after base64 decoding, not 16, 24 or 32"},
		{name: "key 16 bytes", mutate: func(c *Config) { c.Gossip.KeyFile = f.write("16.key", "AAAAAAAAAAAAAAAAAAAAAA==\n", 0o600) }},
		{name: "key readable by others", skip: !unix, mutate: func(c *Config) { c.Gossip.KeyFile = f.write("open.key", mustKey(t), 0o644) },
			want: "gossip.key_file: " + f.path("open.key") + ": group or others can access it (mode 0644), and whoever reads the key can join the farm: chmod 600 " + f.path("open.key")},
		{name: "key writable by group", skip: !unix, mutate: func(c *Config) { c.Gossip.KeyFile = f.write("group.key", mustKey(t), 0o620) },
			want: "gossip.key_file: " + f.path("group.key") + ": group or others can access it (mode 0620)"},
		{name: "key garbage and readable by others", skip: !unix, mutate: func(c *Config) { c.Gossip.KeyFile = f.write("both.key", "!!\n", 0o644) },
			want: "gossip.key_file: " + f.path("both.key") + ": not base64", count: 2},
		{name: "key read-only by owner", mutate: func(c *Config) { c.Gossip.KeyFile = f.write("ro.key", mustKey(t), 0o400) }},

		// interfaces
		{name: "vip interface missing", mutate: func(c *Config) { c.VIP[0].Interface = "nosuch0" },
			want: `vip[0].interface: "nosuch0" is not an interface of this host (it has `},
		{name: "interface checker target missing", mutate: func(c *Config) {
			c.Checker = append(c.Checker, Checker{Name: "link", Type: "interface", Target: "nosuch1"})
		}, want: `checker[1].target: "nosuch1" is not an interface of this host`},
		{name: "interface checker on lo", mutate: func(c *Config) {
			c.Checker = append(c.Checker, Checker{Name: "link", Type: "interface", Target: "lo"})
		}},

		// console.password_file
		{name: "no password file", mutate: func(c *Config) { c.Console.PasswordFile = "" }},
		{name: "password file missing", mutate: func(c *Config) { c.Console.PasswordFile = f.path("nopass") },
			want: "console.password_file: " + f.path("nopass") + ": cannot read: no such file or directory (farm passwd makes one: farm passwd > " + f.path("nopass") + ")"},
		{name: "password file holds a password", mutate: func(c *Config) { c.Console.PasswordFile = f.write("plain.pass", "secret\n", 0o600) },
			want: "console.password_file: " + f.path("plain.pass") + ": does not hold a bcrypt hash (farm passwd makes one"},

		// app.start, app.stop
		{name: "start missing", mutate: func(c *Config) { c.App.Start = f.path("nostart.sh") },
			want: "app.start: " + f.path("nostart.sh") + " does not exist (install the script, or fix the path)"},
		{name: "stop is a directory", mutate: func(c *Config) { c.App.Stop = f.path("state") },
			want: "app.stop: " + f.path("state") + " is a directory, not a script"},
		{name: "script without execute bit runs under sh", mutate: func(c *Config) { c.App.Start = f.write("noexec.sh", "exit 0\n", 0o644) }},
		{name: "command line", mutate: func(c *Config) { c.App.Start = f.path("start.sh") + " nginx.service" }},
		{name: "command line with quoted program", mutate: func(c *Config) { c.App.Start = `"` + f.path("start.sh") + `" nginx.service` }},
		{name: "command line through PATH", mutate: func(c *Config) { c.App.Start = "systemctl start nginx" }},
		{name: "command line, program missing", mutate: func(c *Config) { c.App.Stop = f.path("nostop.sh") + ` nginx "$@"` },
			want: `app.stop: "` + f.path("nostop.sh") + ` nginx \"$@\"": its program ` + f.path("nostop.sh") + " does not exist"},
		{name: "command line, program not executable", skip: !unix, mutate: func(c *Config) { c.App.Start = f.write("plain.sh", "exit 0\n", 0o644) + " nginx" },
			want: `app.start: "` + f.path("plain.sh") + ` nginx": its program ` + f.path("plain.sh") + " is not executable, and a command line runs it directly: chmod +x " + f.path("plain.sh")},
		{name: "no scripts", mutate: func(c *Config) { c.App.Start, c.App.Stop = "", "" }},

		// state_dir
		{name: "state_dir not created yet", mutate: func(c *Config) { c.StateDir = f.path("later") }},
		{name: "state_dir is a file", mutate: func(c *Config) { c.StateDir = f.path("gossip.key") },
			want: "state_dir: " + f.path("gossip.key") + " exists and is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not on " + runtime.GOOS)
			}
			c := f.config()
			tt.mutate(c)
			err := c.CheckHost()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckHost() = %v, want no problem", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckHost() = nil, want %q", tt.want)
			}
			errs := unjoin(err)
			if want := max(tt.count, 1); len(errs) != want {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), want, err)
			}
			if !strings.HasPrefix(errs[0].Error(), tt.want) {
				t.Errorf("CheckHost() = %v\nwant it to start with %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(errs[0], &fe) || fe.Key == "" {
				t.Errorf("problem %q is not a *FieldError with a key", errs[0])
			}
		})
	}
}

// TestCheckHostAllAtOnce checks that every host problem is reported in one
// run, in a stable order, each naming its key.
func TestCheckHostAllAtOnce(t *testing.T) {
	f := newHostFixture(t)
	c := f.config()
	c.Gossip.KeyFile = f.write("garbage.key", "!!\n", 0o600)
	c.VIP = append(c.VIP, VIP{Address: "10.0.0.101", Interface: "nosuch0", Mode: "vmac"})
	c.Console.PasswordFile = f.path("nopass")
	c.App.Start = f.path("nostart.sh")
	c.App.Stop = f.path("state")
	c.StateDir = f.path("gossip.key")
	err := c.CheckHost()
	var keys []string
	for _, e := range unjoin(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %q is not a *FieldError", e)
		}
		keys = append(keys, fe.Key)
	}
	want := []string{"gossip.key_file", "vip[1].interface", "console.password_file", "app.start", "app.stop", "state_dir"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("problems for keys %v, want %v:\n%v", keys, want, err)
	}
}

func TestFirstWord(t *testing.T) {
	for in, want := range map[string]string{
		"/x/start.sh":                  "/x/start.sh",
		"/x/start.sh nginx.service":    "/x/start.sh",
		"  /x/start.sh\tnginx":         "/x/start.sh",
		`"/opt/my app/start.sh" nginx`: "/opt/my app/start.sh",
		`'/opt/a b/s.sh'`:              "/opt/a b/s.sh",
		`"unterminated x`:              `"unterminated`,
	} {
		if got := firstWord(in); got != want {
			t.Errorf("firstWord(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k + "\n"
}
