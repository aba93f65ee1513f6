package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testPrefix is this package's own prefix, random per run, so CleanupPrefix
// in these tests cannot touch any other lab.
func testPrefix(t *testing.T, base string) string {
	t.Helper()
	var b [2]byte
	_, _ = rand.Read(b[:])
	return base + hex.EncodeToString(b[:])
}

// TestLabPlumbing proves the lab without any agent: the VIP is put by hand on
// node 1, and every client source address, IPv4 and IPv6, reaches node 1's
// nginx through the learning bridge by ARP/ND alone.
func TestLabPlumbing(t *testing.T) {
	l := ForTest(t, Options{Nodes: 3, ClientAddrs: 8, Prefix: testPrefix(t, "lt")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for i := 1; i <= 3; i++ {
		if err := l.StartNginx(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("each node answers on its own address", func(t *testing.T) {
		for _, n := range l.Nodes {
			for _, a := range []netip.Addr{n.Addr4, n.Addr6} {
				body, err := l.Get(ctx, netip.Addr{}, URL(a, "/any/path"))
				if err != nil || body != n.Name {
					t.Errorf("GET %s = %q, %v; want %q", a, body, err, n.Name)
				}
			}
		}
	})

	capt, err := l.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"ip", "addr", "add", l.VIP4.String() + "/16", "dev", "eth0"},
		{"ip", "addr", "add", l.VIP6.String() + "/48", "dev", "eth0", "nodad"},
	} {
		if _, err := l.Exec(ctx, "web1", cmd...); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("VIP on web1 answers every source", func(t *testing.T) {
		for _, src := range l.Sources(3) {
			body, err := l.Get(ctx, src, l.VIPURL(src))
			if err != nil || body != "web1" {
				t.Errorf("GET %s from %s = %q, %v; want web1", l.VIPURL(src), src, body, err)
			}
		}
	})
	t.Run("burst", func(t *testing.T) {
		r := l.Burst(ctx, l.Sources(0), 2, l.VIPURL)
		if len(r.Failures) > 0 || r.Requests != 32 || r.PerNode["web1"] != 32 || len(r.Split()) != 0 || len(r.PerSource) != 16 {
			t.Errorf("burst: requests %d failures %v split %v\n%s", r.Requests, r.Failures, r.Split(), r.Table())
		}
	})
	t.Run("capture", func(t *testing.T) {
		rep, err := capt.Stop()
		if err != nil {
			t.Fatal(err)
		}
		// 3 Gets + 32 burst requests, retransmissions possible.
		if rep.SynAcks < 35 || rep.BySource["web1"] != rep.SynAcks || len(rep.Doubles) != 0 {
			t.Errorf("capture report %+v; want >= 35 SYN-ACKs, all from web1, no doubles", rep)
		}
	})
	t.Run("fdb", func(t *testing.T) {
		fdb, err := l.FDB(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e := fdb.Find(l.Node(1).MAC); len(e) != 1 || e[0].Port != l.Node(1).Port {
			t.Errorf("web1's MAC learned as %v; want once on %s\n%s", e, l.Node(1).Port, fdb)
		}
		if e := fdb.Find("02:bf:0a:d5:00:64"); len(e) != 0 {
			t.Errorf("never-seen MAC is in the fdb: %v", e)
		}
	})

	t.Run("close removes everything", func(t *testing.T) {
		pids := l.ownPIDs()
		if len(pids) != 3 {
			t.Fatalf("lab-owned pids %v; want 3 (nginx x3)", pids)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, l, pids)
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// TestAgentProc runs a stand-in agent (a shell script) to check StartAgent's
// plumbing: namespace, config path, log, Stop and Kill.
func TestAgentProc(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "farm")
	script := `#!/bin/sh
echo "args: $*"
ip -br addr show eth0
case "$3" in *web2*) trap '' TERM ;; *) trap 'echo got-term; exit 0' TERM ;; esac
i=0
while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l := ForTest(t, Options{Nodes: 3, ClientAddrs: 1, Prefix: testPrefix(t, "la"), FarmBin: fake, StopTimeout: time.Second})
	procs := map[int]*Proc{}
	for i := 1; i <= 3; i++ {
		p, err := l.StartAgent(i, l.NodeConfig(i, ""))
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = p
	}
	waitLog := func(p *Proc, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.Log(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s log lacks %q:\n%s", p.Name(), want, p.Log())
			}
			time.Sleep(pollInterval)
		}
	}
	for i, p := range procs {
		waitLog(p, l.Node(i).Addr4.String()+"/16")
		waitLog(p, "args: agent --config "+l.AgentConfigPath(i))
	}
	if _, err := l.StartAgent(1, ""); err == nil {
		t.Error("second StartAgent on a running node: no error")
	}
	t.Run("stop graceful", func(t *testing.T) {
		if err := procs[1].Stop(); err != nil {
			t.Error(err)
		}
		waitLog(procs[1], "got-term")
	})
	t.Run("stop ignoring TERM is killed", func(t *testing.T) {
		if err := procs[2].Stop(); err == nil || !procs[2].Exited() {
			t.Errorf("Stop = %v, exited %v; want an error saying it was killed", err, procs[2].Exited())
		}
	})
	t.Run("kill", func(t *testing.T) {
		if err := procs[3].Kill(); err != nil {
			t.Fatal(err)
		}
		if ws, ok := procs[3].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("wait status %v; want killed by SIGKILL", procs[3].cmd.ProcessState)
		}
	})
	t.Run("restart after exit", func(t *testing.T) {
		p, err := l.StartAgent(1, l.NodeConfig(1, "[node]\nweight = 0\n"))
		if err != nil {
			t.Fatal(err)
		}
		waitLog(p, "args: agent")
		if b, _ := os.ReadFile(l.AgentConfigPath(1)); !strings.Contains(string(b), "weight = 0") {
			t.Errorf("config not rewritten:\n%s", b)
		}
	})
}

// TestCleanupPrefix leaves a lab with a running nginx behind, as a crashed
// test would, and removes it by prefix alone.
func TestCleanupPrefix(t *testing.T) {
	prefix := testPrefix(t, "lc")
	l := ForTest(t, Options{Nodes: 2, ClientAddrs: 1, Prefix: prefix})
	if err := l.StartNginx(2); err != nil {
		t.Fatal(err)
	}
	if err := CleanupStale(prefix); err != nil {
		t.Fatal(err)
	}
	if !nsExists(l.Node(2).NS) {
		t.Fatal("CleanupStale removed a lab whose builder (this test) is alive")
	}
	pids := l.ownPIDs()
	if err := CleanupPrefix(prefix); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, pids)
}

// ownPIDs lists the PIDs of the lab's running processes.
func (l *Lab) ownPIDs() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, p := range l.procs {
		if !p.Exited() {
			out = append(out, p.pid)
		}
	}
	return out
}

func assertGone(t *testing.T, l *Lab, pids []int) {
	t.Helper()
	for _, ns := range l.Namespaces() {
		if nsExists(ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	for _, pid := range pids {
		if !procGone(pid) {
			t.Errorf("process %d still alive", pid)
		}
	}
	if _, err := os.Stat(l.RunDir); !os.IsNotExist(err) {
		t.Errorf("run dir %s still exists (%v)", l.RunDir, err)
	}
}

// TestNginxScripts checks the start/stop scripts an agent would run as its
// [app] commands, against the lab's own StartNginx/StopNginx, and that Close
// kills an nginx the lab did not start itself.
func TestNginxScripts(t *testing.T) {
	l := ForTest(t, Options{Nodes: 1, ClientAddrs: 1, Prefix: testPrefix(t, "ln")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := URL(l.Node(1).Addr4, "/")
	serving := func() bool {
		body, err := l.Get(ctx, netip.Addr{}, url)
		return err == nil && body == "web1"
	}
	waitServing := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for serving() != want {
			if time.Now().After(deadline) {
				t.Fatalf("serving = %v after 5s, want %v", !want, want)
			}
			time.Sleep(pollInterval)
		}
	}
	if err := l.StartNginx(1); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		do      func() error
		serving bool
	}{
		{"start script while running is a no-op", func() error { _, err := l.Exec(ctx, "web1", l.NginxStartScript(1)); return err }, true},
		{"StartNginx twice fails", func() error {
			if l.StartNginx(1) == nil {
				return errors.New("no error")
			}
			return nil
		}, true},
		{"StopNginx", func() error { return l.StopNginx(1) }, false},
		{"StopNginx when stopped", func() error { return l.StopNginx(1) }, false},
		{"start script", func() error { _, err := l.Exec(ctx, "web1", l.NginxStartScript(1)); return err }, true},
		{"stop script", func() error { _, err := l.Exec(ctx, "web1", l.NginxStopScript(1)); return err }, false},
		{"start script again", func() error { _, err := l.Exec(ctx, "web1", l.NginxStartScript(1)); return err }, true},
		{"StopNginx stops a script-started nginx", func() error { return l.StopNginx(1) }, false},
		{"StartNginx after", func() error { return l.StartNginx(1) }, true},
		{"stop script stops a lab-started nginx", func() error { _, err := l.Exec(ctx, "web1", l.NginxStopScript(1)); return err }, false},
		{"start script last", func() error { _, err := l.Exec(ctx, "web1", l.NginxStartScript(1)); return err }, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			waitServing(s.serving)
		})
	}
	pid, ok := l.nginxPid(1)
	if !ok {
		t.Fatal("no nginx pid after the start script")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, []int{pid})
}
