//go:build linux

package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/tests/lab"
)

// farmRules reports whether node i's namespace holds the agent's nft table.
func farmRules(t *testing.T, l *lab.Lab, i int) bool {
	t.Helper()
	out, err := l.Exec(context.Background(), l.Node(i).NS, "nft", "list", "tables")
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	return strings.Contains(string(out), "table ip "+rules.NFTTable)
}

// exitCode returns the process's exit status (0 for a nil error).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("not an exit status: %v", err)
	}
	return ee.ExitCode()
}

// waitExit waits (bounded) for p to exit and returns its status.
func waitExit(t *testing.T, p *lab.Proc, d time.Duration) int {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(d):
		t.Fatalf("%s still running after %s:\n%s", p.Name(), d, p.Log())
	}
	return exitCode(t, p.Wait())
}

// TestAgentLifecycle runs the real binary through its start path: SIGTERM
// stops it gracefully (exit 0, rules gone), a second signal forces it out
// (exit 2, its rules left to `farm cleanup`), and a component that fails at
// start makes it exit non-zero after removing what it had installed, so a
// service manager's Restart=on-failure fires.
func TestAgentLifecycle(t *testing.T) {
	f := startFarm(t, 1, "")
	l := f.l
	if !farmRules(t, l, 1) {
		t.Fatal("a running agent has no rules")
	}

	t.Run("SIGTERM exits 0 and removes the rules", func(t *testing.T) {
		start := time.Now()
		if err := f.agents[0].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, f.agents[0], 20*time.Second); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, f.agents[0].Log())
		}
		t.Logf("graceful stop took %v", time.Since(start).Round(time.Millisecond))
		if farmRules(t, l, 1) {
			t.Error("rules left after a graceful stop")
		}
	})

	t.Run("a second signal forces exit", func(t *testing.T) {
		f.startAgent(1, "")
		f.waitUp(1, 20*time.Second)
		p := f.agents[0]
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The second signal must come after the agent took the first (the Go
		// runtime merges two of the same signal that arrive before it reads
		// them), and while the graceful stop (at least serf's 500 ms leave)
		// still runs.
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.Log(), "Signal received") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
			t.Fatal(err)
		}
		if code := waitExit(t, p, 10*time.Second); code != 2 {
			t.Fatalf("exit status %d after two signals, want 2:\n%s", code, p.Log())
		}
		if out, err := l.Exec(context.Background(), l.Node(1).NS, l.FarmBin(), "cleanup"); err != nil {
			t.Fatalf("farm cleanup: %v: %s", err, out)
		}
		if farmRules(t, l, 1) {
			t.Error("rules left after farm cleanup")
		}
	})

	t.Run("a failed component exits non-zero and cleans up", func(t *testing.T) {
		// nginx holds port 80 on every address: the console cannot listen.
		p, err := l.StartAgent(1, l.NodeConfig(1, "[console]\nlisten = \"127.0.0.1:80\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop() })
		code := waitExit(t, p, 20*time.Second)
		if code == 0 {
			t.Fatalf("exit status 0 with a failed console:\n%s", p.Log())
		}
		if log := p.Log(); !strings.Contains(log, "console") || !strings.Contains(log, "address already in use") {
			t.Errorf("the log does not name the failed component:\n%s", log)
		}
		if farmRules(t, l, 1) {
			t.Error("rules left after a failed start")
		}
		t.Logf("exit status %d", code)
	})
}
