// Package script runs the application's recovery scripts and script checkers
// the way an operator expects: any executable runs directly, a shell script
// without the execute bit runs under /bin/sh, PowerShell and batch files run
// under their interpreters on Windows; a script that outlives its timeout is
// killed together with every process it started; output is kept, but capped,
// so a chatty script cannot exhaust the agent's memory.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// MaxOutput caps the output (stdout and stderr together) kept from one run.
// The tail is kept, since that is where a failing script says why.
const MaxOutput = 64 << 10

// DefaultTimeout bounds a Runner's script runs when its Timeout is zero.
const DefaultTimeout = 60 * time.Second

// waitDelay is how long Run waits, after the script exits or is killed, for
// processes it left behind to close their copy of the output pipe. A start
// script that launches a daemon without redirecting its output would
// otherwise hold Run forever.
const waitDelay = 2 * time.Second

// Result is the outcome of one script run.
type Result struct {
	// ExitCode is the script's exit status; -1 when it was killed or did not start.
	ExitCode int
	// Output is the combined stdout and stderr, at most MaxOutput bytes (the tail).
	Output string
	// Duration is how long the run took.
	Duration time.Duration
	// TimedOut is set when the context's deadline killed the script.
	TimedOut bool
	// Err is nil exactly when the script ran and exited with 0; otherwise it
	// says what went wrong (did not start, exit code, timeout).
	Err error
}

// Run runs the script at path with args, the agent's environment plus env
// (KEY=value), and waits for it. When ctx ends first, the script and every
// process it started are killed. Run never panics and always fills Duration;
// look at Result.Err for success.
//
// How path runs: an executable file runs directly; any other existing file
// runs under /bin/sh (Windows: .ps1 under PowerShell, .cmd and .bat under
// cmd /C); a path that names no file is taken as a command line for
// /bin/sh -c (Windows: cmd /C), with args as its positional parameters.
func Run(ctx context.Context, path string, args []string, env []string) Result {
	start := time.Now()
	res := Result{ExitCode: -1}
	if path == "" {
		res.Err = errors.New("script: empty path (set the script's path in the config)")
		res.Duration = time.Since(start)
		return res
	}
	name, argv := command(path, args)
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Env = append(os.Environ(), env...)
	out := &tailBuffer{max: MaxOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)

	err := cmd.Run()
	res.Output = out.String()
	res.Duration = time.Since(start)
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case ctx.Err() != nil && (err != nil || res.ExitCode != 0):
		res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		if res.TimedOut {
			res.Err = fmt.Errorf("script %s: timed out after %s; it and its child processes were killed (raise the timeout or make the script faster)", path, res.Duration.Round(time.Millisecond))
		} else {
			res.Err = fmt.Errorf("script %s: cancelled (%v); it and its child processes were killed", path, ctx.Err())
		}
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// The script succeeded but left a process holding its output open:
		// a success, with a hint, since the output may be incomplete.
		res.Output += "\n[farm: a process started by the script kept its output open; redirect the output of daemons it starts]"
	case err == nil:
	case res.ExitCode >= 0:
		res.Err = fmt.Errorf("script %s: exited with code %d", path, res.ExitCode)
	default:
		res.Err = fmt.Errorf("script %s: could not run: %w (check the path and that it is executable)", path, err)
	}
	return res
}

// Runner runs the application's start and stop scripts, one at a time per
// node: a restart must never overlap with an operator's stop.
type Runner struct {
	// StartPath and StopPath are the application's scripts; empty means
	// there is nothing to run, which counts as success.
	StartPath, StopPath string
	// Timeout bounds each run (DefaultTimeout when zero).
	Timeout time.Duration
	// Env is added to every run's environment (FARM_NODE, FARM_VIP); each
	// method adds FARM_ACTION.
	Env []string
	// Log receives one line per run (nil: not logged).
	Log *slog.Logger

	mu sync.Mutex
}

// Start runs the start script with FARM_ACTION=start.
func (r *Runner) Start(ctx context.Context) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run(ctx, "start", r.StartPath, nil)
}

// Stop runs the stop script with FARM_ACTION=stop. If it fails, it is run
// once more with the argument "force", so a script can try the polite way
// first and kill hard the second time. The returned Result is the last run's.
func (r *Runner) Stop(ctx context.Context) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.run(ctx, "stop", r.StopPath, nil)
	if res.Err == nil || ctx.Err() != nil {
		return res
	}
	return r.run(ctx, "stop", r.StopPath, []string{"force"})
}

// Run runs any script under the runner's lock and timeout, with FARM_ACTION
// set to action.
func (r *Runner) Run(ctx context.Context, action, path string, args []string) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run(ctx, action, path, args)
}

func (r *Runner) run(ctx context.Context, action, path string, args []string) Result {
	if path == "" {
		return Result{}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := append(append([]string(nil), r.Env...), "FARM_ACTION="+action)
	res := Run(ctx, path, args, env)
	if r.Log != nil {
		attrs := []any{"action", action, "script", path, "args", args, "exit_code", res.ExitCode,
			"duration", res.Duration.Round(time.Millisecond), "timed_out", res.TimedOut}
		if res.Err != nil {
			r.Log.Warn("Application script failed.", append(attrs, "error", res.Err, "output", res.Output)...)
		} else {
			r.Log.Info("Application script ran.", attrs...)
		}
	}
	return res
}

// LastLine returns the last non-empty line of a script's output, at most
// max bytes (then marked with "..."): where a failing script usually says
// why, short enough for an error message or an event.
func LastLine(output string, max int) string {
	s := strings.TrimSpace(output)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// tailBuffer keeps the last max bytes written to it and counts the rest.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.dropped += int64(len(b.buf) + len(p) - b.max)
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return string(b.buf)
	}
	var s bytes.Buffer
	fmt.Fprintf(&s, "[farm: %d earlier bytes of output dropped]\n", b.dropped)
	s.Write(b.buf)
	return s.String()
}
