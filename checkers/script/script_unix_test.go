//go:build unix

package script

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeScript writes an executable (or not) shell script into dir.
func writeScript(t *testing.T, dir, name, body string, exec bool) string {
	t.Helper()
	p := filepath.Join(dir, name)
	mode := os.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		path     string
		args     []string
		env      []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"pass", writeScript(t, dir, "ok.sh", "echo hello; echo oops >&2", true), nil, nil, 0, "hello\noops\n", ""},
		{"fail code", writeScript(t, dir, "fail.sh", "echo bad; exit 3", true), nil, nil, 3, "bad\n", "exited with code 3"},
		{"not executable runs under sh", writeScript(t, dir, "noexec.sh", `echo "arg=$1"`, false), []string{"x"}, nil, 0, "arg=x\n", ""},
		{"args and env", writeScript(t, dir, "env.sh", `echo "$1 $2 $FARM_ACTION"`, true), []string{"a", "b"}, []string{"FARM_ACTION=check"}, 0, "a b check\n", ""},
		{"command line", `echo "cmd $1"`, []string{"z"}, nil, 0, "cmd z\n", ""},
		{"missing file", filepath.Join(dir, "nope.sh"), nil, nil, 127, "", "exited with code 127"},
		{"empty path", "", nil, nil, -1, "", "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := Run(ctx, tt.path, tt.args, tt.env)
			if res.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d (err %v, output %q)", res.ExitCode, tt.wantCode, res.Err, res.Output)
			}
			if tt.wantOut != "" && res.Output != tt.wantOut {
				t.Errorf("Output = %q, want %q", res.Output, tt.wantOut)
			}
			switch {
			case tt.wantErr == "" && res.Err != nil:
				t.Errorf("Err = %v, want nil", res.Err)
			case tt.wantErr != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.wantErr)):
				t.Errorf("Err = %v, want it to contain %q", res.Err, tt.wantErr)
			}
			if res.TimedOut || (tt.path != "" && res.Duration <= 0) {
				t.Errorf("TimedOut = %v, Duration = %v", res.TimedOut, res.Duration)
			}
		})
	}
}

// gone reports whether pid no longer runs (absent, or a zombie nobody reaped).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

func TestRunTimeoutKillsProcessTree(t *testing.T) {
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child.pid")
	// The child sleeps holding the output pipe; the script waits for it.
	path := writeScript(t, dir, "hang.sh", "sleep 300 &\necho $! > "+childFile+"\necho started\nwait", true)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res := Run(ctx, path, nil, nil)
	child := readPid(t, childFile)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if !res.TimedOut || res.Err == nil || !strings.Contains(res.Err.Error(), "timed out") {
		t.Fatalf("TimedOut = %v, Err = %v; want a timeout", res.TimedOut, res.Err)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1 (killed)", res.ExitCode)
	}
	if !strings.Contains(res.Output, "started") {
		t.Errorf("Output = %q, want the output written before the timeout", res.Output)
	}
	waitFor(t, "child sleep "+strconv.Itoa(child)+" to be killed", 10*time.Second, func() bool { return gone(child) })
}

func TestRunCancelKillsProcessTree(t *testing.T) {
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child.pid")
	path := writeScript(t, dir, "hang.sh", "sleep 300 &\necho $! > "+childFile+"\nwait", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, path, nil, nil) }()
	child := readPid(t, childFile)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	cancel()
	var res Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if res.TimedOut || res.Err == nil || !strings.Contains(res.Err.Error(), "cancelled") {
		t.Fatalf("TimedOut = %v, Err = %v; want a cancellation", res.TimedOut, res.Err)
	}
	waitFor(t, "child sleep to be killed", 10*time.Second, func() bool { return gone(child) })
}

func TestRunDaemonHoldingOutputDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child.pid")
	// A careless start script: the daemon keeps the output pipe open.
	path := writeScript(t, dir, "start.sh", "sleep 300 &\necho $! > "+childFile+"\necho launched\nexit 0", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := Run(ctx, path, nil, nil)
	child := readPid(t, childFile)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("Err = %v, ExitCode = %d; want success", res.Err, res.ExitCode)
	}
	if !strings.Contains(res.Output, "launched") || !strings.Contains(res.Output, "redirect the output") {
		t.Errorf("Output = %q", res.Output)
	}
	if gone(child) {
		t.Error("the daemon started by a successful script was killed; it must survive")
	}
}

func TestRunOutputCap(t *testing.T) {
	dir := t.TempDir()
	// ~200 KiB of numbered lines, then a last line.
	path := writeScript(t, dir, "chatty.sh", `i=0; while [ $i -lt 20000 ]; do echo "line $i ........"; i=$((i+1)); done; echo LAST`, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := Run(ctx, path, nil, nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Output) > MaxOutput+100 {
		t.Errorf("len(Output) = %d, want about %d", len(res.Output), MaxOutput)
	}
	if !strings.HasPrefix(res.Output, "[farm: ") || !strings.Contains(res.Output, "bytes of output dropped") {
		t.Errorf("Output does not say it was truncated: %q", res.Output[:80])
	}
	if !strings.HasSuffix(res.Output, "LAST\n") {
		t.Errorf("Output does not end with the script's last line: %q", res.Output[len(res.Output)-40:])
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		writes  []string
		want    string
		dropped int64
	}{
		{"fits", 8, []string{"abc", "def"}, "abcdef", 0},
		{"exact", 6, []string{"abc", "def"}, "abcdef", 0},
		{"drops head", 4, []string{"abc", "def"}, "cdef", 2},
		{"big write", 4, []string{"ab", "0123456789"}, "6789", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &tailBuffer{max: tt.max}
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if string(b.buf) != tt.want || b.dropped != tt.dropped {
				t.Fatalf("buf %q dropped %d, want %q %d", b.buf, b.dropped, tt.want, tt.dropped)
			}
		})
	}
}

func TestRunnerStopForce(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantRuns  string
		wantError bool
	}{
		{"polite stop works", `echo "$FARM_ACTION:$1" >> "$LOG"; exit 0`, "stop:\n", false},
		{"force after failure", `echo "$FARM_ACTION:$1" >> "$LOG"; [ "$1" = force ] && exit 0; exit 1`, "stop:\nstop:force\n", false},
		{"both fail", `echo "$FARM_ACTION:$1" >> "$LOG"; exit 2`, "stop:\nstop:force\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "runs.log")
			r := &Runner{
				StopPath: writeScript(t, dir, "stop.sh", tt.body, true),
				Timeout:  30 * time.Second,
				Env:      []string{"LOG=" + log},
			}
			res := r.Stop(context.Background())
			if (res.Err != nil) != tt.wantError {
				t.Fatalf("Err = %v, want error %v", res.Err, tt.wantError)
			}
			b, _ := os.ReadFile(log)
			if string(b) != tt.wantRuns {
				t.Fatalf("runs = %q, want %q", b, tt.wantRuns)
			}
		})
	}
}

func TestRunnerTimeoutAndEmpty(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{StartPath: writeScript(t, dir, "start.sh", "exec sleep 300", true), Timeout: 300 * time.Millisecond}
	if res := r.Start(context.Background()); !res.TimedOut {
		t.Fatalf("Start of a hanging script: %+v, want TimedOut", res)
	}
	if res := (&Runner{}).Stop(context.Background()); res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("Stop with no script: %+v, want success", res)
	}
}

func TestRunnerOneAtATime(t *testing.T) {
	dir := t.TempDir()
	// mkdir is atomic: a second run overlapping the first fails.
	body := `mkdir "$D/lock" || exit 9; sleep 0.2; rmdir "$D/lock"`
	r := &Runner{StartPath: writeScript(t, dir, "start.sh", body, true), StopPath: writeScript(t, dir, "stop.sh", body, true),
		Timeout: 30 * time.Second, Env: []string{"D=" + dir}}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 3; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- r.Start(context.Background()).Err }()
		go func() { defer wg.Done(); errs <- r.Run(context.Background(), "stop", r.StopPath, nil).Err }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("overlapping runs: %v", err)
		}
	}
}
