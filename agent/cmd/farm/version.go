package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is what the binary knows of its own build, from the Go build
// information: the module version (a tag, or a pseudo-version of the
// commit, with +dirty for uncommitted changes), the VCS revision and its
// commit time. `go build` records the VCS fields only with VCS stamping on
// (-buildvcs=auto or true, in a git checkout); `make package` builds with it.
type version struct {
	Module   string // v1.2.3, v0.0.0-20260101120000-abcdef123456+dirty, or (devel)
	Revision string // full commit hash, "" when not stamped
	Time     string // commit time, RFC 3339, "" when not stamped
	Modified bool   // built from a tree with uncommitted changes
	Go       string // toolchain, e.g. go1.26.0
	Platform string // GOOS/GOARCH
}

func buildVersion() version {
	v := version{Module: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// short is the one-line form of farm --version.
func (v version) short() string {
	if v.Revision == "" || strings.Contains(v.Module, v.Revision[:min(12, len(v.Revision))]) {
		return v.Module
	}
	return fmt.Sprintf("%s (%.12s)", v.Module, v.Revision)
}

func (v version) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "farm %s\n", v.Module)
	if v.Revision == "" {
		b.WriteString("revision: unknown (built without VCS stamping: go build -buildvcs=auto in a git checkout, or make package)\n")
	} else {
		mod := ""
		if v.Modified {
			mod = " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "revision: %s%s\n", v.Revision, mod)
		fmt.Fprintf(&b, "date:     %s (commit time of the revision)\n", v.Time)
	}
	fmt.Fprintf(&b, "go:       %s %s\n", v.Go, v.Platform)
	return b.String()
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and date this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), buildVersion())
			return nil
		},
	}
}
