package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Lab is a running lab: its Layout (names, addresses) plus the processes it
// started. Its methods are safe for concurrent use.
type Lab struct {
	Layout

	opts Options

	mu       sync.Mutex
	closed   bool
	closeErr error
	procs    map[string]*Proc          // by proc name, while the lab owns them
	handles  map[string]netns.NsHandle // netns handles for in-process dials
	captures map[*Capture]struct{}
	nCapture int
}

// New builds a lab: namespaces, bridge, veth pairs, addresses, the gossip
// key, and per-node nginx files. ctx bounds the building only; the lab lives
// until Close. On error everything built so far is removed again.
func New(ctx context.Context, o Options) (*Lab, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.FarmBin == "" {
		o.FarmBin = defaultFarmBin()
	}
	if err := os.MkdirAll(RunBase, 0o755); err != nil {
		return nil, fmt.Errorf("create lab run base %s (are you root?): %w", RunBase, err)
	}
	// Claim an ID by creating its run dir: Mkdir fails if another lab has it.
	var id, dir string
	for try := 0; ; try++ {
		var b [2]byte
		_, _ = rand.Read(b[:])
		id = o.Prefix + hex.EncodeToString(b[:])
		dir = filepath.Join(RunBase, id)
		err := os.Mkdir(dir, 0o755)
		if err == nil && !nsExists(id+"-sw") {
			break
		}
		if err == nil {
			_ = os.Remove(dir)
		} else if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create lab run dir %s: %w", dir, err)
		}
		if try >= 32 {
			return nil, fmt.Errorf("no free lab id with prefix %q after %d tries: clean up with lab.CleanupPrefix(%q)", o.Prefix, try, o.Prefix)
		}
	}
	l := &Lab{
		Layout:   plan(o, id, dir),
		opts:     o,
		procs:    map[string]*Proc{},
		handles:  map[string]netns.NsHandle{},
		captures: map[*Capture]struct{}{},
	}
	l.Owner = selfOwner()
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// Open attaches to a lab another process built (the farmlab CLI's later
// commands), from its run dir. The returned Lab owns no child processes, but
// Close still kills every process recorded in the run dir.
func Open(runDir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "lab.json"))
	if err != nil {
		return nil, fmt.Errorf("open lab: %w", err)
	}
	l := &Lab{
		procs:    map[string]*Proc{},
		handles:  map[string]netns.NsHandle{},
		captures: map[*Capture]struct{}{},
	}
	if err := json.Unmarshal(b, &l.Layout); err != nil {
		return nil, fmt.Errorf("open lab: parse %s: %w", filepath.Join(runDir, "lab.json"), err)
	}
	l.opts = Options{Nodes: len(l.Nodes), Prefix: l.Prefix, FarmBin: l.FarmBinary}.withDefaults()
	return l, nil
}

// Find lists the run dirs of labs with this prefix (those with a lab.json),
// so a CLI can Open the lab it built earlier.
func Find(prefix string) ([]string, error) {
	ents, err := os.ReadDir(RunBase)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs in %s: %w", RunBase, err)
	}
	var out []string
	for _, e := range ents {
		if id, ok := ownedBy(prefix, e.Name()); ok && id == e.Name() && e.IsDir() {
			d := filepath.Join(RunBase, e.Name())
			if _, err := os.Stat(filepath.Join(d, "lab.json")); err == nil {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

func (l *Lab) build(ctx context.Context) error {
	// The manifest comes first: once a namespace exists, a cleanup must be
	// able to tell whose it is.
	if err := l.writeManifest(); err != nil {
		return err
	}
	if err := os.MkdirAll(l.pidDir(), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", l.pidDir(), err)
	}
	if err := l.writeFiles(); err != nil {
		return err
	}
	for _, ns := range l.Namespaces() {
		if _, err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
	}
	// Sysctls before any interface exists, so eth0 inherits "default". The
	// switch has no IP at all: it must not send frames of its own.
	for _, ns := range l.Namespaces() {
		args := []string{"sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}
		if ns == l.Switch.NS {
			args = append(args, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		}
		if _, err := l.Exec(ctx, ns, args...); err != nil {
			return fmt.Errorf("set sysctls: %w", err)
		}
	}
	sw := []string{
		"link set lo up",
		"link add " + l.Switch.Bridge + " type bridge",
	}
	hosts := append(append([]Host(nil), l.Nodes...), l.Client)
	for _, h := range hosts {
		sw = append(sw,
			fmt.Sprintf("link add %s type veth peer name %s netns %s", h.Port, h.Link, h.NS),
			fmt.Sprintf("link set %s master %s", h.Port, l.Switch.Bridge),
			fmt.Sprintf("link set %s up", h.Port))
	}
	sw = append(sw, "link set "+l.Switch.Bridge+" up")
	if err := ipBatch(ctx, l.Switch.NS, sw); err != nil {
		return err
	}
	if err := l.switchOffBridgeNetfilter(ctx); err != nil {
		return err
	}
	for _, h := range hosts {
		cmds := []string{
			"link set lo up",
			fmt.Sprintf("link set %s address %s", h.Link, h.MAC),
			fmt.Sprintf("link set %s up", h.Link),
			fmt.Sprintf("addr add %s/%d dev %s", h.Addr4, l.Subnet4.Bits(), h.Link),
			fmt.Sprintf("addr add %s/%d dev %s nodad", h.Addr6, l.Subnet6.Bits(), h.Link),
		}
		if h.Name == l.Client.Name {
			for _, a := range l.ClientAddrs4 {
				cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev %s", a, l.Subnet4.Bits(), h.Link))
			}
			for _, a := range l.ClientAddrs6 {
				cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev %s nodad", a, l.Subnet6.Bits(), h.Link))
			}
		}
		if err := ipBatch(ctx, h.NS, cmds); err != nil {
			return err
		}
	}
	return nil
}

// switchOffBridgeNetfilter makes the switch a switch: where br_netfilter is
// loaded (by anything on the host: a container runtime, say), every frame the
// bridge forwards would also walk the IP firewall hooks, once per port a
// frame is flooded to. A hardware switch does nothing of the kind, and it
// would charge the farm (whose frames are flooded to every node) for a cost
// its users never pay. The sysctls are per namespace and exist only while the
// module is loaded.
func (l *Lab) switchOffBridgeNetfilter(ctx context.Context) error {
	_, err := l.Exec(ctx, l.Switch.NS, "sh", "-c",
		`for f in /proc/sys/net/bridge/bridge-nf-call-*; do if [ -e "$f" ]; then echo 0 > "$f" || exit 1; fi; done`)
	if err != nil {
		return fmt.Errorf("switch off bridge netfilter in the switch namespace: %w", err)
	}
	return nil
}

func (l *Lab) writeManifest() error {
	b, err := json.MarshalIndent(l.Layout, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab manifest: %w", err)
	}
	if err := os.WriteFile(l.manifestPath(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab manifest: %w", err)
	}
	return nil
}

// writeFiles writes the gossip key and each node's nginx config and scripts.
func (l *Lab) writeFiles() error {
	var key [32]byte
	_, _ = rand.Read(key[:])
	if err := os.WriteFile(l.GossipKeyPath(), []byte(base64.StdEncoding.EncodeToString(key[:])+"\n"), 0o600); err != nil {
		return fmt.Errorf("write gossip key: %w", err)
	}
	for _, n := range l.Nodes {
		i := n.Index
		for _, d := range []string{filepath.Join(l.NodeDir(i), "state"), filepath.Join(l.NginxDir(i), "tmp")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", d, err)
			}
		}
		files := []struct {
			path string
			body string
			mode os.FileMode
		}{
			{l.nginxConfPath(i), l.nginxConf(i), 0o644},
			{l.NginxStartScript(i), l.nginxStartScript(i), 0o755},
			{l.NginxStopScript(i), l.nginxStopScript(i), 0o755},
		}
		for _, f := range files {
			if err := os.WriteFile(f.path, []byte(f.body), f.mode); err != nil {
				return fmt.Errorf("write %s: %w", f.path, err)
			}
		}
	}
	return nil
}

// Exec runs a command inside a lab host (ip netns exec) and returns its
// standard output; ns is a namespace name or a friendly one (see ResolveNS).
// The error carries the exit status and standard error.
func (l *Lab) Exec(ctx context.Context, ns string, args ...string) ([]byte, error) {
	full, err := l.ResolveNS(ns)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec in %s: no command", full)
	}
	return run(ctx, nil, "ip", append([]string{"netns", "exec", full}, args...)...)
}

// FarmBin is the agent binary StartAgent runs.
func (l *Lab) FarmBin() string { return l.FarmBinary }

// HaveFarm reports whether the agent binary exists, so a demo can start
// agents only once they are built.
func (l *Lab) HaveFarm() bool {
	st, err := os.Stat(l.FarmBinary)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Close kills every process the lab started (by recorded PID and process
// group), deletes every namespace and removes the run dir (unless
// KeepRunDir). It is safe to call twice; the second call returns the first
// call's error.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.closeErr
	}
	l.closed = true
	caps := make([]*Capture, 0, len(l.captures))
	for c := range l.captures {
		caps = append(caps, c)
	}
	procs := make([]*Proc, 0, len(l.procs))
	for _, p := range l.procs {
		procs = append(procs, p)
	}
	l.mu.Unlock()

	var errs []error
	for _, c := range caps {
		c.kill()
	}
	errs = append(errs, killRecorded(l.RunDir))
	for _, p := range procs {
		// Reaped by their own goroutine once killed; wait briefly so no
		// zombie of ours outlives Close.
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("%s (pid %d) still running 5s after SIGKILL", p.name, p.pid))
		}
	}
	l.mu.Lock()
	for _, h := range l.handles {
		_ = h.Close()
	}
	l.handles = map[string]netns.NsHandle{}
	l.mu.Unlock()
	errs = append(errs, deleteNamespaces(l.Namespaces()))
	if !l.opts.KeepRunDir && l.RunDir != "" {
		if err := os.RemoveAll(l.RunDir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab run dir: %w", err))
		}
	}
	err := errors.Join(errs...)
	l.mu.Lock()
	l.closeErr = err
	l.mu.Unlock()
	return err
}

// deleteNamespaces deletes each namespace that exists. A namespace that
// still holds processes (not the lab's: those were killed) is reported,
// because it stays alive without its name.
func deleteNamespaces(names []string) error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range names {
		if !nsExists(ns) {
			continue
		}
		if out, err := run(ctx, nil, "ip", "netns", "pids", ns); err == nil && len(bytes.TrimSpace(out)) > 0 {
			errs = append(errs, fmt.Errorf("namespace %s still holds processes the lab did not start (pids %s); deleting its name, they keep it alive",
				ns, strings.Join(strings.Fields(string(out)), ",")))
		}
		if _, err := run(ctx, nil, "ip", "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, fmt.Errorf("delete namespace: %w", err))
		}
	}
	return errors.Join(errs...)
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// ipBatch runs ip commands in namespace ns in one process.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	in := strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if _, err := run(ctx, in, "ip", "-n", ns, "-batch", "-"); err != nil {
		return fmt.Errorf("configure namespace %s: %w", ns, err)
	}
	return nil
}

// run runs a command to completion and returns its standard output; the
// error names the command and carries its standard error.
func run(ctx context.Context, stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// defaultFarmBin finds <repo>/bin/farm: the first directory upwards from the
// working directory whose go.mod declares the farm module, else the repo
// this file was compiled from.
func defaultFarmBin() string {
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/webfarm/farm\n")) {
				return filepath.Join(d, "bin", "farm")
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		return filepath.Join(filepath.Dir(file), "..", "..", "bin", "farm")
	}
	return "bin/farm"
}
