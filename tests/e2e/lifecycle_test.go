//go:build linux

package e2e

import (
	"context"
	"errors"
	"net"
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
// stops it gracefully (exit 0, established connections carry on, new ones
// are refused, farm cleanup removes what stays), and a component that fails at
// start makes it exit non-zero after removing what it had installed, so a
// service manager's Restart=on-failure fires. (A second signal forcing the
// exit is tested on the signal handler itself, agent/cmd/farm: here the
// graceful stop of a one-node farm can end before a second signal lands.)
func TestAgentLifecycle(t *testing.T) {
	f := startFarm(t, 1, "")
	l := f.l
	if !farmRules(t, l, 1) {
		t.Fatal("a running agent has no rules")
	}

	t.Run("SIGTERM exits 0 and leaves the established connections carrying on", func(t *testing.T) {
		// A stopped agent leaves the VIP and the guard, as a crashed one
		// does: its connections carry on however long it stays down (an
		// upgrade), it takes no new one, and farm cleanup removes it all.
		conns := rsOpen(t, l, l.Sources(2))
		start := time.Now()
		if err := f.agents[0].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, f.agents[0], 20*time.Second); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0:\n%s", code, f.agents[0].Log())
		}
		t.Logf("graceful stop took %v", time.Since(start).Round(time.Millisecond))
		if lab.Engine() != "kernel" {
			// Only the kernel engine parks: a user-space engine's rules
			// need their process, so they go with it (drain first).
			if farmRules(t, l, 1) {
				t.Errorf("%s engine: rules left after a graceful stop", lab.Engine())
			}
			return
		}
		time.Sleep(2 * time.Second) // longer than a client's first retransmissions
		for _, c := range conns {
			if got, err := c.get(5 * time.Second); err != nil || got != "web1" {
				t.Errorf("%s: keep-alive connection after the agent stopped: %q, %v", c.src, got, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := l.DialContext("client", l.Sources(1)[0])(ctx, "tcp", net.JoinHostPort(l.VIPFor(l.Sources(1)[0]).String(), "80")); err == nil {
			t.Error("a new connection was accepted with the agent stopped (must fail closed)")
		}
		if !farmRules(t, l, 1) {
			t.Error("the guard is gone after a graceful stop: established connections cannot carry on")
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ccancel()
		if out, err := l.Exec(cctx, l.Node(1).NS, l.FarmBin(), "cleanup"); err != nil {
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
