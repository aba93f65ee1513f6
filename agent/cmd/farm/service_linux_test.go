package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/internal/testenv"
)

// The root tests below run the real binary inside a network namespace of
// their own (never in the host's): it installs nftables and iptables rules
// and claims a VIP on a veth there.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// farmBinary builds the farm command once per test binary.
func farmBinary(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	testenv.Need(t, err == nil, "the go tool in PATH (to build the farm binary)")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "farmsvctest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "farm")
		out, err := exec.Command(gotool, "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

var nsSeq atomic.Int32

// testNetns makes a network namespace with lo up and a veth pair, eth0
// (10.0.0.11/24) and its peer, for the VIP; it is deleted at the end.
func testNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("farmsvctest-%d-%d", os.Getpid(), nsSeq.Add(1))
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Kill what still runs in it (only our agents can), then delete it.
		if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	sh(t, "ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	sh(t, "ip", "-n", name, "addr", "add", "10.0.0.11/24", "dev", "eth0")
	sh(t, "ip", "-n", name, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", name, "link", "set", "eth0p", "up")
	return name
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nodeConfig writes a one-node config (VIP 192.0.2.100 on eth0, console
// and gossip on loopback) into dir and returns its path.
func nodeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	key, err := config.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "farm.toml")
	writeConfig(t, path, keyFile, dir, extra)
	return path
}

func writeConfig(t *testing.T, path, keyFile, dir, extra string) {
	t.Helper()
	text := fmt.Sprintf(`
state_dir = %q
[node]
name = "web1"
id = 1
drain_timeout = "2s"
[gossip]
bind = "127.0.0.1:7946"
key_file = %q
[[vip]]
address = "192.0.2.100"
interface = "eth0"
[[rule]]
proto = "tcp"
ports = "80"
%s`, filepath.Join(dir, "state"), keyFile, extra)
	if !strings.Contains(extra, "[console]") {
		text += "[console]\nlisten = \"127.0.0.1:9010\"\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pid1Script plays systemd for one unit as PID 1 of a fresh PID namespace:
// the file system read-only except the state directory (ProtectSystem=strict
// with StateDirectory=), farm cleanup first (ExecStartPre=), then the agent
// with no terminal and stdin on /dev/null; it exits with the agent's status.
// There is no cleanup after the agent (the unit has no ExecStopPost=): the
// test checks that a stopped agent left the VIP and the guard (its flows
// carry on) and that `farm cleanup` removes them.
const pid1Script = `set -eu
mkdir -p "$STATE"
mount --bind "$STATE" "$STATE"
mount -o remount,bind,ro /
if touch "$STATE/../rw-probe" 2>/dev/null; then
	echo "the root file system is still writable" >&2
	exit 99
fi
"$FARM" cleanup
"$FARM" agent --config "$CONFIG" </dev/null &
rc=0
wait $! || rc=$?
exit "$rc"
`

// managedAgent is a farm agent started the way a service manager starts it.
type managedAgent struct {
	cmd  *exec.Cmd
	pid  int // the agent's PID, as the host sees it
	done chan struct{}
	err  error
	log  string // the file stdout and stderr go to
}

func (m *managedAgent) logText() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// startManaged starts the agent under pid1Script. With journal, its
// stderr is announced as the journal's stream (JOURNAL_STREAM names the
// log file, as systemd names its socket).
func startManaged(t *testing.T, ns, bin, cfg, state string, journal bool, env ...string) *managedAgent {
	t.Helper()
	m := &managedAgent{log: filepath.Join(t.TempDir(), "agent.log"), done: make(chan struct{})}
	f, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if journal {
		id, ok := fileID(f)
		if !ok {
			t.Fatal("no device and inode for the log file")
		}
		env = append(env, "JOURNAL_STREAM="+id)
	}
	m.cmd = exec.Command("ip", "netns", "exec", ns, "unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", pid1Script)
	m.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "FARM=" + bin, "CONFIG=" + cfg, "STATE=" + state}, env...)
	m.cmd.Stdin = nil // /dev/null
	m.cmd.Stdout = f
	m.cmd.Stderr = f
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Kill()
			if m.pid != 0 {
				_ = syscall.Kill(m.pid, syscall.SIGKILL)
			}
			<-m.done
		}
	})
	// unshare forks PID 1 (sh), which starts the agent: find it.
	deadline := time.Now().Add(20 * time.Second)
	for m.pid == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no farm agent process under %d after 20s:\n%s", m.cmd.Process.Pid, m.logText())
		}
		select {
		case <-m.done:
			t.Fatalf("exited before the agent started: %v\n%s", m.err, m.logText())
		case <-time.After(20 * time.Millisecond):
		}
		for _, p := range descendants(m.cmd.Process.Pid) {
			if args := cmdline(p); len(args) > 1 && args[0] == bin && args[1] == "agent" {
				m.pid = p
			}
		}
	}
	return m
}

// wait returns the exit status of PID 1, which is the agent's.
func (m *managedAgent) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(d):
		t.Fatalf("still running after %s:\n%s", d, m.logText())
	}
	if m.err == nil {
		return 0
	}
	if ee, ok := m.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", m.err)
	return -1
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := procField(p, "PPid"); ok {
			parent[p], _ = strconv.Atoi(pp)
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// procField returns a field of /proc/PID/status.
func procField(pid int, key string) (string, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), key+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// ttyNr is field 7 of /proc/PID/stat: 0 when there is no controlling terminal.
func ttyNr(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return fields[4] // state ppid pgrp session tty_nr
}

// farmRules lists what of the agent's rules is in namespace ns: its nft
// tables and any iptables chain or rule naming farm.
func farmRules(t *testing.T, ns string) []string {
	t.Helper()
	var found []string
	for _, f := range strings.Fields(sh(t, "ip", "netns", "exec", ns, "nft", "list", "tables")) {
		if strings.HasPrefix(f, "farm") {
			found = append(found, "nft table "+f)
		}
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command("ip", "netns", "exec", ns, tool).CombinedOutput()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(strings.ToLower(l), "farm") {
				found = append(found, tool+": "+l)
			}
		}
	}
	return found
}

// vipHeld reports whether 192.0.2.100 is an address in ns.
func vipHeld(t *testing.T, ns string) bool {
	return strings.Contains(sh(t, "ip", "-n", ns, "-4", "addr", "show"), "inet 192.0.2.100/")
}

// consoleAnswers reports whether the console answers HTTP inside ns.
func consoleAnswers(ns string) bool {
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}", "http://127.0.0.1:9010/").Output()
	return err == nil && len(out) == 3 && out[0] != '0'
}

// TestAgentUnderServiceManager runs `farm agent` the way systemd runs the
// unit: PID 1 of its PID namespace is its parent, no terminal, a read-only
// file system but its state directory, NOTIFY_SOCKET and WATCHDOG_USEC set.
// READY=1 comes only once the rules are in, the VIP is held and the console
// answers; SIGHUP reloads (RELOADING=1, READY=1); SIGTERM sends STOPPING=1
// and the agent exits 0, leaving the VIP and the guard (farm cleanup removes them).
func TestAgentUnderServiceManager(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables and the VIP", "ip", "unshare", "nft", "mount", "curl")
	bin := farmBinary(t)
	ns := testNetns(t)
	dir := t.TempDir()
	cfg := nodeConfig(t, dir, "")
	start := time.Now()
	raw := notifySocket(t)
	sock := os.Getenv("NOTIFY_SOCKET")
	// Every message, with its time since start, goes into the test log.
	var heard struct {
		sync.Mutex
		lines []string
	}
	msgs := make(chan string, 100)
	go func() {
		for m := range raw {
			heard.Lock()
			heard.lines = append(heard.lines, fmt.Sprintf("%8s %q", time.Since(start).Round(time.Millisecond), m))
			heard.Unlock()
			msgs <- m
		}
	}()
	defer func() {
		heard.Lock()
		defer heard.Unlock()
		t.Logf("NOTIFY_SOCKET messages:\n%s", strings.Join(heard.lines, "\n"))
	}()

	m := startManaged(t, ns, bin, cfg, filepath.Join(dir, "state"), true,
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=2000000", "INVOCATION_ID=0123456789abcdef0123456789abcdef")

	if ppid, _ := procField(m.pid, "PPid"); ppid != "" {
		p, _ := strconv.Atoi(ppid)
		nspid, _ := procField(p, "NSpid")
		if f := strings.Fields(nspid); len(f) == 0 || f[len(f)-1] != "1" {
			t.Errorf("the agent's parent is %s in its PID namespace, want 1 (NSpid %q)", ppid, nspid)
		}
	}
	if tty := ttyNr(t, m.pid); tty != "0" {
		t.Errorf("the agent has a controlling terminal (tty_nr %s)", tty)
	}

	// Messages before READY=1 may only be watchdog pings.
	var ready time.Duration
	for ready == 0 {
		select {
		case msg := <-msgs:
			switch {
			case msg == "WATCHDOG=1":
			case strings.HasPrefix(msg, "READY=1"):
				ready = time.Since(start)
				// The node must be serving at this point already.
				if r := farmRules(t, ns); len(r) == 0 {
					t.Error("READY=1 before the agent's rules are in")
				}
				if !vipHeld(t, ns) {
					t.Error("READY=1 before the VIP is held")
				}
				if !consoleAnswers(ns) {
					t.Error("READY=1 before the console answers")
				}
			default:
				t.Fatalf("before READY=1: %q", msg)
			}
		case <-m.done:
			t.Fatalf("the agent exited before READY=1: %v\n%s", m.err, m.logText())
		case <-time.After(30 * time.Second):
			t.Fatalf("no READY=1 after 30s:\n%s", m.logText())
		}
	}
	t.Logf("READY=1 after %v", ready.Round(time.Millisecond))
	// On the journal's stream: no time (the journal stamps each line) and
	// each line's syslog priority first.
	if l := m.logText(); strings.Contains(l, "time=") || !strings.Contains(l, "\n<6>level=INFO msg=\"Node ready.\" node=web1\n") {
		t.Errorf("the log on the journal's stream has times or lacks priorities:\n%.600s", l)
	}

	// SIGHUP with a weight change: reloaded, framed by RELOADING=1/READY=1.
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte("id = 1\n"), []byte("id = 1\nweight = 50\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(m.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := next(t, msgs, 10*time.Second); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("after SIGHUP: %q, want RELOADING=1", msg)
	}
	if msg := next(t, msgs, 10*time.Second); msg != "READY=1" {
		t.Errorf("after the reload: %q, want READY=1", msg)
	}
	waitLog(t, m, "Config reloaded.", 10*time.Second)
	waitLog(t, m, "to=50", 10*time.Second)

	// SIGTERM: STOPPING=1, exit 0, no rule left (PID 1 runs no cleanup).
	if err := syscall.Kill(m.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := next(t, msgs, 10*time.Second); !strings.HasPrefix(msg, "STOPPING=1") {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", msg)
	}
	if code := m.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, m.logText())
	}
	if r := farmRules(t, ns); !slices.Contains(r, "nft table farm_guard") || slices.Contains(r, "nft table farm_owned") {
		t.Errorf("after SIGTERM the guard must stay and the owned table go: %q", r)
	}
	if !vipHeld(t, ns) {
		t.Error("VIP released after SIGTERM: the node's established flows cannot carry on")
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, bin, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("farm cleanup: %v: %s", err, out)
	}
	if r := farmRules(t, ns); len(r) > 0 {
		t.Errorf("rules left after farm cleanup: %q", r)
	}
	if vipHeld(t, ns) {
		t.Error("VIP still held after farm cleanup")
	}
	t.Logf("agent log:\n%s", m.logText())
}

// TestAgentComponentFailure: a console that cannot listen (its port is the
// gossip port, which serf holds) makes the agent exit non-zero, so
// Restart=on-failure fires, after removing its rules.
func TestAgentComponentFailure(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables and the VIP", "ip", "unshare", "nft", "mount")
	bin := farmBinary(t)
	ns := testNetns(t)
	dir := t.TempDir()
	cfg := nodeConfig(t, dir, "[console]\nlisten = \"127.0.0.1:7946\"\n")
	m := startManaged(t, ns, bin, cfg, filepath.Join(dir, "state"), false)
	code := m.wait(t, 30*time.Second)
	if code == 0 {
		t.Fatalf("exit status 0 with a failed console:\n%s", m.logText())
	}
	if l := m.logText(); !strings.Contains(l, "console") || !strings.Contains(l, "address already in use") {
		t.Errorf("the log does not name the failed component:\n%s", l)
	} else if !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "time=") {
		t.Errorf("the log outside the journal lacks times or levels:\n%s", l)
	}
	if r := farmRules(t, ns); len(r) > 0 {
		t.Errorf("rules left after a failed start: %q", r)
	}
	t.Logf("exit status %d", code)
}

func waitLog(t *testing.T, m *managedAgent, s string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !strings.Contains(m.logText(), s) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q in the log after %s:\n%s", s, d, m.logText())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestSysVScript runs the init script `farm service install --init sysv`
// writes, in a network namespace: start runs the agent under its
// supervisor, an agent killed with SIGKILL is restarted, stop ends it (the
// guard stays until farm cleanup), status follows.
func TestSysVScript(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables and the VIP", "ip", "nft")
	if _, err := os.Stat("/etc/default/farm"); err == nil {
		t.Skip("/etc/default/farm exists on this host and would override the test's settings")
	}
	bin := farmBinary(t)
	ns := testNetns(t)
	dir := t.TempDir()
	cfg := nodeConfig(t, dir, "")
	// install reads the config under --root: put a copy there.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(cfg)), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(filepath.Join(root, cfg), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := farm(t, "service", "install", "--init", "sysv", "--root", root, "--bin", bin, "--config", cfg); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	script := filepath.Join(root, "etc/init.d/farm")
	env := []string{"PATH=" + os.Getenv("PATH"), "FARM_PIDFILE=" + filepath.Join(dir, "farm.pid"), "FARM_LOG=" + filepath.Join(dir, "farm.log")}
	run := func(action string) (string, int) {
		c := exec.Command("ip", "netns", "exec", ns, script, action)
		c.Env = env
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %s: %v", script, action, err)
		}
		return string(out), code
	}
	logf := func() string { b, _ := os.ReadFile(filepath.Join(dir, "farm.log")); return string(b) }
	t.Cleanup(func() {
		if out, code := run("stop"); code != 0 {
			t.Logf("cleanup stop: %d %s", code, out)
		}
	})

	if out, code := run("start"); code != 0 {
		t.Fatalf("start: exit %d: %s\n%s", code, out, logf())
	} else {
		t.Logf("start: %s", strings.TrimSpace(out))
	}
	if out, code := run("status"); code != 0 {
		t.Errorf("status while running: exit %d: %s", code, out)
	}
	agentPid := func() int {
		b, err := os.ReadFile(filepath.Join(dir, "farm.pid"))
		if err != nil {
			t.Fatal(err)
		}
		sup, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		for _, p := range descendants(sup) {
			if a := cmdline(p); len(a) > 1 && a[0] == bin && a[1] == "agent" {
				return p
			}
		}
		return 0
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(d); !ok(); {
			if time.Now().After(end) {
				t.Fatalf("%s: not after %s\n%s", what, d, logf())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var first int
	waitFor("agent running with its rules", 20*time.Second, func() bool {
		first = agentPid()
		return first != 0 && vipHeld(t, ns) && len(farmRules(t, ns)) > 0
	})

	// A crash (SIGKILL: no cleanup): the supervisor cleans up and restarts.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor("agent restarted after SIGKILL", 20*time.Second, func() bool {
		p := agentPid()
		return p != 0 && p != first && vipHeld(t, ns)
	})
	if !strings.Contains(logf(), "restarting it in 1s") {
		t.Errorf("the log does not say the agent is restarted:\n%s", logf())
	}

	if out, code := run("stop"); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, out)
	}
	if r := farmRules(t, ns); !slices.Contains(r, "nft table farm_guard") {
		t.Errorf("after stop the guard must stay (established flows carry on): %q", r)
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, bin, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("farm cleanup: %v: %s", err, out)
	}
	if r := farmRules(t, ns); len(r) > 0 {
		t.Errorf("rules left after stop and farm cleanup: %q", r)
	}
	if out, code := run("status"); code != 3 {
		t.Errorf("status after stop: exit %d, want 3: %s", code, out)
	}
	if out, code := run("stop"); code != 0 || !strings.Contains(out, "not running") {
		t.Errorf("second stop: exit %d: %s", code, out)
	}
	t.Logf("log:\n%s", logf())
}
