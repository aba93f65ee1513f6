// Command packaging builds farm's release packages from built binaries: a
// .deb for Linux nodes (with nfpm, used as a library) and a zip for Windows
// nodes. `make package` builds the binaries and runs it:
//
//	go run ./packaging -linux dist/linux-amd64/farm -windows dist/windows-amd64/farm.exe -out dist
//
// The .deb holds /usr/bin/farm, the systemd unit (scripts/farm.service for
// /usr/bin/farm) in /usr/lib/systemd/system, the example config as the
// conffile /etc/farm/farm.toml, the Linux [app] scripts and the SysV script
// under /usr/share/farm/scripts, and maintainer scripts that never start an
// unconfigured agent (packaging/deb). The zip holds farm.exe, scripts\iis,
// the example config, the license and packaging/windows/INSTALL.txt.
package main

import (
	"archive/zip"
	"debug/buildinfo"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/webfarm/farm/scripts"
)

// depends are what the agent runs or needs on a node: nft and iptables for
// the rules, conntrack for the flows, ip for the VIP links.
var depends = []string{"nftables", "iptables", "conntrack", "iproute2"}

// linuxScripts are the [app] script sets that ship in the .deb.
var linuxScripts = []string{"nginx", "apache", "systemd"}

// options are the command's flags.
type options struct {
	repo       string // the repository's top directory
	linux      string // farm built for linux/amd64
	windows    string // farm.exe built for windows/amd64
	out        string // where the packages go
	version    string // package version; "" = from the linux binary's build info
	maintainer string
}

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "the repository's top directory")
	flag.StringVar(&o.linux, "linux", "", "farm built for linux/amd64 (the .deb is skipped without it)")
	flag.StringVar(&o.windows, "windows", "", "farm.exe built for windows/amd64 (the zip is skipped without it)")
	flag.StringVar(&o.out, "out", "dist", "output directory")
	flag.StringVar(&o.version, "version", "", "package version (default: from the binary's Go build information)")
	flag.StringVar(&o.maintainer, "maintainer", "farm maintainers <farm@localhost>", "the .deb's Maintainer field")
	flag.Parse()
	if o.linux == "" && o.windows == "" {
		fmt.Fprintln(os.Stderr, "packaging: nothing to do: give -linux and/or -windows")
		os.Exit(2)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fail(err)
	}
	if o.linux != "" {
		p, err := buildDeb(o)
		if err != nil {
			fail(err)
		}
		fmt.Println(p)
	}
	if o.windows != "" {
		p, err := buildZip(o)
		if err != nil {
			fail(err)
		}
		fmt.Println(p)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "packaging:", err)
	os.Exit(1)
}

// moduleVersion reads the main module's version from a Go binary.
func moduleVersion(bin string) (string, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("%s: %w (not a Go binary?)", bin, err)
	}
	return bi.Main.Version, nil
}

// fileTime is the time the packages give their files: the commit time the
// binary was built from (so that a rebuild gives the same package), else
// now.
func fileTime(bin string) time.Time {
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC()
				}
			}
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

var semverRE = regexp.MustCompile(`^v(\d+\.\d+\.\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$`)

// debVersion turns a Go module version into a Debian one that sorts the
// same way: v1.2.3 -> 1.2.3; a pre-release or pseudo-version
// v0.0.0-20260101120000-abcdef123456+dirty -> 0.0.0~20260101120000.abcdef123456+dirty
// (~ sorts before the release it precedes); (devel), a build without VCS
// stamping, -> 0.0.0~dev.
func debVersion(module string) string {
	m := semverRE.FindStringSubmatch(module)
	if m == nil {
		return "0.0.0~dev"
	}
	v := m[1]
	if m[2] != "" {
		v += "~" + strings.ReplaceAll(m[2], "-", ".")
	}
	if m[3] != "" {
		v += "+" + strings.ReplaceAll(m[3], "-", ".")
	}
	return v
}

func (o options) packageVersion(bin string) (string, error) {
	if o.version != "" {
		return o.version, nil
	}
	mv, err := moduleVersion(bin)
	if err != nil {
		return "", err
	}
	return debVersion(mv), nil
}

// debContents lists the .deb's files; staging holds the generated ones.
func debContents(o options, staging string) (files.Contents, error) {
	unit, err := scripts.Render(scripts.Unit, "/usr/bin/farm", scripts.DefaultConfig)
	if err != nil {
		return nil, err
	}
	unitPath := filepath.Join(staging, "farm.service")
	if err := os.WriteFile(unitPath, []byte(unit), 0o644); err != nil {
		return nil, err
	}
	file := func(src, dst string, mode fs.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	repo := func(p string) string { return filepath.Join(o.repo, p) }
	c := files.Contents{
		file(o.linux, "/usr/bin/farm", 0o755),
		file(unitPath, "/usr/lib/systemd/system/farm.service", 0o644),
		{Source: repo("farm.example.toml"), Destination: "/etc/farm/farm.toml", Type: files.TypeConfig, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		file(repo("farm.example.toml"), "/usr/share/doc/farm/farm.example.toml", 0o644),
		file(repo("LICENSE"), "/usr/share/doc/farm/copyright", 0o644),
		file(repo("README.md"), "/usr/share/doc/farm/README.md", 0o644),
		file(repo("scripts/README.md"), "/usr/share/farm/scripts/README.md", 0o644),
		file(repo("scripts/farm.init"), "/usr/share/farm/scripts/farm.init", 0o755),
	}
	for _, set := range linuxScripts {
		ents, err := os.ReadDir(repo(filepath.Join("scripts", set)))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			src := repo(filepath.Join("scripts", set, e.Name()))
			fi, err := os.Stat(src)
			if err != nil {
				return nil, err
			}
			// Scripts keep their execute bit; common.sh is sourced, not run.
			mode := fs.FileMode(0o644)
			if fi.Mode().Perm()&0o100 != 0 {
				mode = 0o755
			}
			c = append(c, file(src, "/usr/share/farm/scripts/"+set+"/"+e.Name(), mode))
		}
	}
	return c, nil
}

// debInfo describes the .deb.
func debInfo(o options, version string, contents files.Contents) *nfpm.Info {
	script := func(name string) string { return filepath.Join(o.repo, "packaging", "deb", name) }
	return &nfpm.Info{
		Name:          "farm",
		Arch:          "amd64",
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // debVersion made it a Debian version already
		Section:       "net",
		Priority:      "optional",
		Maintainer:    o.maintainer,
		Description: "In-host farm clustering agent for web servers\n" +
			"Every node of a web farm runs the agent; all nodes hold the same virtual IP, each\n" +
			"serves its share of the clients, and the live nodes take over the share of a\n" +
			"node that fails, stops or drains. Installing the package does not enable or\n" +
			"start the agent: configure /etc/farm/farm.toml first.",
		License: "Apache-2.0",
		MTime:   fileTime(o.linux),
		Overridables: nfpm.Overridables{
			Depends:  depends,
			Suggests: []string{"nginx | apache2", "curl"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: script("postinst"),
				PreRemove:   script("prerm"),
				PostRemove:  script("postrm"),
			},
		},
	}
}

// buildDeb writes out/farm_VERSION_amd64.deb.
func buildDeb(o options) (string, error) {
	version, err := o.packageVersion(o.linux)
	if err != nil {
		return "", err
	}
	staging, err := os.MkdirTemp("", "farm-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	contents, err := debContents(o, staging)
	if err != nil {
		return "", err
	}
	info := nfpm.WithDefaults(debInfo(o, version, contents))
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	path := filepath.Join(o.out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("deb: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, nil
}

// buildZip writes out/farm_VERSION_windows_amd64.zip, everything under a
// folder farm/ (copied to C:\farm).
func buildZip(o options) (string, error) {
	version, err := o.packageVersion(o.windows)
	if err != nil {
		return "", err
	}
	type entry struct{ src, dst string }
	entries := []entry{
		{o.windows, "farm.exe"},
		{filepath.Join(o.repo, "packaging/windows/INSTALL.txt"), "INSTALL.txt"},
		{filepath.Join(o.repo, "farm.example.toml"), "farm.example.toml"},
		{filepath.Join(o.repo, "LICENSE"), "LICENSE.txt"},
	}
	iis := filepath.Join(o.repo, "scripts/iis")
	ents, err := os.ReadDir(iis)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.IsDir() {
			entries = append(entries, entry{filepath.Join(iis, e.Name()), "scripts/iis/" + e.Name()})
		}
	}
	path := filepath.Join(o.out, fmt.Sprintf("farm_%s_windows_amd64.zip", version))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	mtime := fileTime(o.windows)
	zw := zip.NewWriter(f)
	for _, e := range entries {
		if err := addZip(zw, e.src, "farm/"+e.dst, mtime); err != nil {
			zw.Close()
			f.Close()
			os.Remove(path)
			return "", err
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func addZip(zw *zip.Writer, src, name string, mtime time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mtime})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, in)
	return err
}
