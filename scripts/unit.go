package scripts

import (
	_ "embed" // the unit and the init script ship inside the farm binary
	"fmt"
	"regexp"
	"strings"
)

// Unit is farm.service, the agent's systemd unit, byte for byte: `farm
// service install` writes it (through Render) and the .deb ships it, so the
// file in this folder is the one that runs.
//
//go:embed farm.service
var Unit string

// SysV is farm.init, the SysV init script `farm service install --init sysv`
// writes as /etc/init.d/farm on hosts without systemd.
//
//go:embed farm.init
var SysV string

// The paths Unit and SysV are written for; Render replaces them.
const (
	DefaultBinary = "/usr/local/bin/farm"
	DefaultConfig = "/etc/farm/farm.toml"
)

// safePath is what a path must look like to go into a unit or a shell
// script unquoted: systemd reads $, %, quotes, backslashes and spaces
// specially, and so does sh.
var safePath = regexp.MustCompile(`^/[A-Za-z0-9/._+@,-]*$`)

// Render returns text (Unit or SysV) for the binary bin and the config file
// cfg: DefaultBinary and DefaultConfig are replaced on every line that is
// not a comment. Both must be absolute paths without characters a unit or a
// shell would read specially.
func Render(text, bin, cfg string) (string, error) {
	for _, p := range []struct{ what, path string }{{"binary", bin}, {"config", cfg}} {
		if !safePath.MatchString(p.path) {
			return "", fmt.Errorf("%s path %q: use an absolute path of letters, digits and / . _ + @ , - only (a unit file or init script would need quoting for anything else)", p.what, p.path)
		}
	}
	r := strings.NewReplacer(DefaultBinary, bin, DefaultConfig, cfg)
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines[i] = r.Replace(l)
		}
	}
	return strings.Join(lines, ""), nil
}
