package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/internal/testenv"
)

// files lists the files under the scripts folder whose names end with ext,
// relative to it, sorted.
func files(t *testing.T, ext string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ext) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	if len(out) == 0 {
		t.Fatalf("no *%s file under scripts/", ext)
	}
	return out
}

// The script sets every README promises; a folder that goes missing fails here.
var sets = []string{"nginx", "apache", "systemd", "iis"}

func TestSetsAreComplete(t *testing.T) {
	want := map[string][]string{
		"nginx":   {"README.md", "common.sh", "start.sh", "stop.sh"},
		"apache":  {"README.md", "common.sh", "start.sh", "stop.sh"},
		"systemd": {"README.md", "common.sh", "start.sh", "stop.sh"},
		"iis":     {"README.md", "common.ps1", "start.ps1", "stop.ps1", "recycle.ps1"},
	}
	for _, set := range sets {
		t.Run(set, func(t *testing.T) {
			for _, f := range want[set] {
				if _, err := os.Stat(filepath.Join(set, f)); err != nil {
					t.Errorf("%s/%s: %v", set, f, err)
				}
			}
		})
	}
	for _, f := range []string{"README.md", "farm.service"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// isCommon reports whether path is a set's shared file (common.sh,
// common.ps1), which the scripts source and the agent never runs.
func isCommon(path string) bool {
	return strings.HasPrefix(filepath.Base(path), "common.")
}

// TestShellScriptsShape checks what the agent's runner relies on: POSIX sh,
// strict mode, and the execute bit (without it the runner falls back to
// /bin/sh, which works, but an operator running the script by hand fails).
// A common.sh is sourced, never run: no shebang and no execute bit, so that
// nobody takes it for a script to point [app] at.
func TestShellScriptsShape(t *testing.T) {
	for _, f := range files(t, ".sh") {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if isCommon(f) {
				if !bytes.HasPrefix(b, []byte("# shellcheck shell=sh\n")) {
					t.Errorf("first line is not `# shellcheck shell=sh` (a sourced file has no shebang)")
				}
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm()&0o111 != 0 {
					t.Errorf("mode %v: a sourced file is not executable (chmod 644)", fi.Mode().Perm())
				}
				return
			}
			if !bytes.HasPrefix(b, []byte("#!/bin/sh\n")) {
				t.Errorf("first line is not #!/bin/sh")
			}
			if !regexp.MustCompile(`(?m)^set -eu$`).Match(b) {
				t.Errorf("no `set -eu` line")
			}
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o111 != 0o111 {
				t.Errorf("mode %v: want executable by all (chmod 755)", fi.Mode().Perm())
			}
		})
	}
}

// TestShellcheck runs shellcheck on every shell script: no finding of any
// severity is allowed. It runs in the script's folder with -x, so that
// shellcheck follows the source of common.sh and knows what it defines.
func TestShellcheck(t *testing.T) {
	_, err := exec.LookPath("shellcheck")
	testenv.Need(t, err == nil, "shellcheck is not installed (apt-get install shellcheck)")
	for _, f := range files(t, ".sh") {
		t.Run(f, func(t *testing.T) {
			cmd := exec.Command("shellcheck", "-x", "--shell=sh", "--severity=style", filepath.Base(f))
			cmd.Dir = filepath.Dir(f)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("shellcheck %s: %v\n%s", f, err, out)
			}
		})
	}
}

// sourced maps each script set to its shared file, the scripts that source
// it, and the line that does.
var sourced = map[string]struct {
	common  string
	scripts []string
	load    *regexp.Regexp
	fn      *regexp.Regexp // a function definition; group 1 is its name
}{
	"nginx":   {"common.sh", []string{"start.sh", "stop.sh"}, shLoad, shFunc},
	"apache":  {"common.sh", []string{"start.sh", "stop.sh"}, shLoad, shFunc},
	"systemd": {"common.sh", []string{"start.sh", "stop.sh"}, shLoad, shFunc},
	"iis":     {"common.ps1", []string{"start.ps1", "stop.ps1", "recycle.ps1"}, psLoad, psFunc},
}

var (
	shLoad = regexp.MustCompile(`(?m)^common=\$\(dirname -- "\$0"\)/common\.sh\n(?:.*\n)*?\. "\$common"$`)
	shFunc = regexp.MustCompile(`(?m)^([a-z_]+)\(\) \{`)
	psLoad = regexp.MustCompile(`(?m)^\$common = Join-Path \$PSScriptRoot 'common\.ps1'\n(?:.*\n)*?\. \$common$`)
	psFunc = regexp.MustCompile(`(?m)^function ([A-Za-z-]+)\b`)
)

// TestCommonIsSourced checks that the scripts of each set share their common
// part by sourcing the set's common file from their own folder, rather than
// by carrying a copy of it: no copied block with its old marker lines, and no
// function of the common file defined again in a script.
func TestCommonIsSourced(t *testing.T) {
	for _, set := range sets {
		t.Run(set, func(t *testing.T) {
			s, ok := sourced[set]
			if !ok {
				t.Fatalf("no entry in sourced for the set %s", set)
			}
			common := mustRead(t, filepath.Join(set, s.common))
			var shared []string
			for _, m := range s.fn.FindAllStringSubmatch(common, -1) {
				shared = append(shared, m[1])
			}
			if len(shared) == 0 {
				t.Fatalf("%s/%s defines no function", set, s.common)
			}
			for _, f := range append([]string{s.common}, s.scripts...) {
				path := filepath.Join(set, f)
				b := mustRead(t, path)
				for _, marker := range []string{"# --- common", "# --- end common ---"} {
					if strings.Contains(b, marker) {
						t.Errorf("%s: a copied common block (%q) is left: source %s instead", path, marker, s.common)
					}
				}
				if f == s.common {
					continue
				}
				if !s.load.MatchString(b) {
					t.Errorf("%s does not source %s from its own folder (want the lines matching %s)", path, s.common, s.load)
				}
				for _, m := range s.fn.FindAllStringSubmatch(b, -1) {
					if slices.Contains(shared, m[1]) {
						t.Errorf("%s defines %s again: it is in %s", path, m[1], s.common)
					}
				}
			}
		})
	}
}

// TestPowerShellScriptsShape checks what PowerShell cannot be run here to
// check: strict mode, stop on errors, explicit exit codes, and plain ASCII
// (Windows PowerShell 5.1 reads a file without a BOM in the ANSI code page).
// common.ps1 runs in the scope of the script that dot-sources it, under that
// script's strict mode; it must not exit, which would skip the script's own
// error report.
func TestPowerShellScriptsShape(t *testing.T) {
	for _, f := range files(t, ".ps1") {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range b {
				if c >= 0x80 {
					t.Fatalf("byte %d is not ASCII (0x%02x)", i, c)
				}
			}
			s := string(b)
			wants := []string{
				"Set-StrictMode -Version Latest\n",
				"$ErrorActionPreference = 'Stop'\n",
				"[CmdletBinding()]\nparam(",
				"    exit 0\n",
				"    exit 1\n",
			}
			if isCommon(f) {
				wants = nil
				if m := regexp.MustCompile(`(?mi)^\s*(exit\b|param\s*\(|\[CmdletBinding)`).FindString(s); m != "" {
					t.Errorf("%q: a dot-sourced file has no parameters and does not exit", strings.TrimSpace(m))
				}
			}
			for _, want := range wants {
				if !strings.Contains(s, want) {
					t.Errorf("missing %q", want)
				}
			}
			// "$x:" inside a double-quoted string reads as a scope or drive
			// qualified variable, a classic PowerShell bug; the scripts build
			// messages with -f instead.
			if m := regexp.MustCompile(`"[^"\n]*\$[A-Za-z_]\w*:\s[^"\n]*"`).FindString(s); m != "" {
				t.Errorf("%s: a variable followed by a colon in a double-quoted string", m)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// baseConfig is a minimal valid node config; each README snippet ([app] and
// its [[checker]]) is appended to it and must make a valid whole.
const baseConfig = `
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
`

// TestReadmeSnippetsAreValidConfig parses every toml block of every README
// with the agent's own config parser (unknown keys are errors), so a snippet
// an operator pastes is never wrong.
func TestReadmeSnippetsAreValidConfig(t *testing.T) {
	block := regexp.MustCompile("(?s)```toml\n(.*?)```")
	total := 0
	for _, f := range files(t, "README.md") {
		for i, m := range block.FindAllStringSubmatch(mustRead(t, f), -1) {
			total++
			t.Run(f+"#"+strconv.Itoa(i+1), func(t *testing.T) {
				if _, err := config.Parse([]byte(baseConfig + "\n" + m[1])); err != nil {
					t.Errorf("snippet %d of %s is not a valid config:\n%v\n--- snippet ---\n%s", i+1, f, err, m[1])
				}
			})
		}
	}
	if total < len(sets) {
		t.Errorf("found %d toml snippets in the READMEs, want at least one per set (%d)", total, len(sets))
	}
}
