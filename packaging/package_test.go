package main

import (
	"archive/zip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/webfarm/farm/internal/testenv"
)

func TestDebVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3+dirty", "1.2.3+dirty"},
		{"v0.0.0-20261201064617-6e0aa1a3d3a1+dirty", "0.0.0~20261201064617.6e0aa1a3d3a1+dirty"},
		{"v1.2.4-0.20261201064617-6e0aa1a3d3a1", "1.2.4~0.20261201064617.6e0aa1a3d3a1"},
		{"v2.0.0-rc.1", "2.0.0~rc.1"},
		{"(devel)", "0.0.0~dev"},
		{"", "0.0.0~dev"},
	} {
		if got := debVersion(c.in); got != c.want {
			t.Errorf("debVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A later commit sorts after an earlier one, and a pseudo-version
	// before the release it leads to.
	if _, err := exec.LookPath("dpkg"); err == nil {
		for _, p := range [][2]string{
			{"0.0.0~20261201064617.6e0aa1a3d3a1", "0.0.0~20261202000000.0123456789ab"},
			{"1.2.4~0.20261201064617.6e0aa1a3d3a1", "1.2.4"},
			{"1.2.3", "1.2.4~0.20261201064617.6e0aa1a3d3a1"},
		} {
			if err := exec.Command("dpkg", "--compare-versions", p[0], "lt", p[1]).Run(); err != nil {
				t.Errorf("dpkg: %s is not older than %s", p[0], p[1])
			}
		}
	}
}

var (
	pkgOnce sync.Once
	pkgDir  string
	pkgDeb  string
	pkgZip  string
	pkgErr  error
)

// packages builds farm for Linux and Windows (with VCS stamping, as make
// package does) and both packages, once per test binary.
func packages(t *testing.T) (deb, zip string) {
	t.Helper()
	gotool, err := exec.LookPath("go")
	testenv.Need(t, err == nil, "the go tool in PATH (to build farm)")
	pkgOnce.Do(func() {
		pkgDir, pkgErr = os.MkdirTemp("", "farm-package-test-")
		if pkgErr != nil {
			return
		}
		o := options{repo: "..", out: pkgDir, maintainer: "test <test@localhost>",
			linux: filepath.Join(pkgDir, "farm"), windows: filepath.Join(pkgDir, "farm.exe")}
		for _, b := range []struct{ goos, out string }{{"linux", o.linux}, {"windows", o.windows}} {
			cmd := exec.Command(gotool, "build", "-buildvcs=auto", "-trimpath", "-o", b.out, "../agent/cmd/farm")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+b.goos, "GOARCH=amd64")
			if out, err := cmd.CombinedOutput(); err != nil {
				pkgErr = fmt.Errorf("go build (%s): %v\n%s", b.goos, err, out)
				return
			}
		}
		if pkgDeb, pkgErr = buildDeb(o); pkgErr != nil {
			return
		}
		pkgZip, pkgErr = buildZip(o)
	})
	if pkgErr != nil {
		t.Fatal(pkgErr)
	}
	return pkgDeb, pkgZip
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkgDir != "" {
		os.RemoveAll(pkgDir)
	}
	os.Exit(code)
}

// TestDebContents reads the .deb's control fields and file list.
func TestDebContents(t *testing.T) {
	_, err := exec.LookPath("dpkg-deb")
	testenv.Need(t, err == nil, "dpkg-deb (apt-get install dpkg)")
	deb, _ := packages(t)
	field := func(name string) string {
		out, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := field("Depends"); got != "nftables, iptables, conntrack, iproute2" {
		t.Errorf("Depends: %q", got)
	}
	if got := field("Package"); got != "farm" {
		t.Errorf("Package: %q", got)
	}
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	list := string(out)
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/farm\n",
		"-rw-r--r-- root/root .* ./usr/lib/systemd/system/farm.service\n",
		"-rw-r--r-- root/root .* ./etc/farm/farm.toml\n",
		"-rwxr-xr-x root/root .* ./usr/share/farm/scripts/nginx/start.sh\n",
		"-rw-r--r-- root/root .* ./usr/share/farm/scripts/nginx/common.sh\n",
		"-rwxr-xr-x root/root .* ./usr/share/farm/scripts/farm.init\n",
		"-rw-r--r-- root/root .* ./usr/share/doc/farm/copyright\n",
	} {
		f := strings.Fields(strings.ReplaceAll(want, " .* ", " "))
		found := false
		for _, l := range strings.Split(list, "\n") {
			lf := strings.Fields(l)
			if len(lf) >= 6 && lf[0] == f[0] && lf[1] == f[1] && lf[len(lf)-1] == f[2] {
				found = true
			}
		}
		if !found {
			t.Errorf("the .deb has no %s %s %s", f[0], f[1], f[2])
		}
	}
	if strings.Contains(list, "iis") || strings.Contains(list, ".go\n") {
		t.Errorf("the .deb carries Windows scripts or Go sources:\n%s", list)
	}
	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(ctl, "conffiles")); err != nil || strings.TrimSpace(string(b)) != "/etc/farm/farm.toml" {
		t.Errorf("conffiles: %q %v, want /etc/farm/farm.toml", b, err)
	}
	unit := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/lib/systemd/system/farm.service > \"$2\"", "sh", deb, unit).CombinedOutput(); err != nil {
		t.Fatalf("extract the unit: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(unit)
	if !strings.Contains(string(b), "\nExecStart=/usr/bin/farm agent --config /etc/farm/farm.toml\n") {
		t.Errorf("the packaged unit does not run /usr/bin/farm:\n%s", b)
	}
	t.Logf("%s:\n%s", filepath.Base(deb), list)
}

func TestZipContents(t *testing.T) {
	_, zipPath := packages(t)
	r, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	for _, want := range []string{"farm/farm.exe", "farm/INSTALL.txt", "farm/LICENSE.txt", "farm/farm.example.toml",
		"farm/scripts/iis/start.ps1", "farm/scripts/iis/stop.ps1", "farm/scripts/iis/common.ps1", "farm/scripts/iis/README.md"} {
		if !slices.Contains(names, want) {
			t.Errorf("the zip has no %s (it has %q)", want, names)
		}
	}
	t.Logf("%s: %q", filepath.Base(zipPath), names)
}

// TestDebInstall installs the .deb on this machine with dpkg, checks that
// nothing was enabled or started, runs farm version and farm check on the
// example config, then purges the package and checks that none of its files
// is left.
func TestDebInstall(t *testing.T) {
	testenv.RequireRoot(t, "dpkg -i", "dpkg", "dpkg-query")
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "farm").Output(); strings.Contains(string(out), "installed") {
		testenv.Need(t, false, "a farm package is installed on this machine already ("+string(out)+"): the test does not touch it")
	}
	for _, p := range []string{"/usr/bin/farm", "/etc/farm", "/var/lib/farm", "/usr/share/farm"} {
		if _, err := os.Lstat(p); err == nil {
			testenv.Need(t, false, p+" exists: the test would install over it")
		}
	}
	deb, _ := packages(t)
	run := func(name string, args ...string) (string, error) {
		out, err := exec.Command(name, args...).CombinedOutput()
		t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
		return string(out), err
	}
	purged := false
	t.Cleanup(func() {
		if !purged {
			_, _ = run("dpkg", "--purge", "farm")
		}
	})
	if _, err := run("ps", "-p", "1", "-o", "pid=,comm="); err != nil {
		t.Log("ps failed")
	}

	if _, err := run("dpkg", "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v", err)
	}
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/farm.service"); err == nil {
		t.Error("installing enabled the unit: an unconfigured agent would start at boot")
	}
	if out, err := run("/usr/bin/farm", "version"); err != nil || !strings.HasPrefix(out, "farm v") || !strings.Contains(out, "revision: ") {
		t.Errorf("farm version: %v", err)
	}
	if out, err := run("/usr/bin/farm", "check", "--offline", "--config", "/etc/farm/farm.toml"); err != nil || !strings.Contains(out, "/etc/farm/farm.toml: ok") {
		t.Errorf("farm check --offline on the example config: %v", err)
	}
	// The host checks cannot pass here (no gossip key, no eth0 of the
	// example's node): they must say so, naming the keys.
	if out, err := run("/usr/bin/farm", "check", "--config", "/etc/farm/farm.toml"); err == nil || !strings.Contains(out, "gossip.key_file") {
		t.Errorf("farm check with host checks on this machine: %v, want the missing gossip key reported", err)
	}
	out, err := run("/usr/bin/farm", "service", "status")
	if !strings.Contains(out, "/usr/lib/systemd/system/farm.service") {
		t.Errorf("farm service status does not find the packaged unit (%v)", err)
	}
	if out, err := run("/usr/bin/farm", "service", "install"); err == nil || !strings.Contains(out, "already installed by the farm package") {
		t.Errorf("farm service install over the package: %v", err)
	}
	conf, _ := run("dpkg-query", "-W", "-f=${Conffiles}\n", "farm")
	if !strings.Contains(conf, "/etc/farm/farm.toml") {
		t.Error("/etc/farm/farm.toml is not a conffile")
	}
	list, err := run("dpkg", "-L", "farm")
	if err != nil {
		t.Fatal(err)
	}
	// The agent writes its state here; purge must remove it.
	if err := os.MkdirAll("/var/lib/farm", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/var/lib/farm/api.token", []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := run("dpkg", "--purge", "farm"); err != nil {
		t.Fatalf("dpkg --purge: %v", err)
	}
	purged = true
	var left []string
	for _, p := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.Contains(p, "farm") {
			continue // a shared directory (/usr, /usr/bin, /etc)
		}
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	for _, p := range []string{"/var/lib/farm", "/etc/farm", "/etc/systemd/system/multi-user.target.wants/farm.service"} {
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("left after dpkg --purge: %q", left)
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "farm").CombinedOutput(); strings.Contains(string(out), "installed") && !strings.Contains(string(out), "not-installed") {
		t.Errorf("dpkg still lists farm: %s", out)
	}
}
