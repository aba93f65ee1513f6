//go:build unix

package checkers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/events"
)

// fakeNode records what the Monitor asks of the node.
type fakeNode struct {
	mu    sync.Mutex
	calls []bool // the failed argument of each SetFailed
	why   []string
}

func (n *fakeNode) SetFailed(failed bool, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, failed)
	n.why = append(n.why, reason)
}

func (n *fakeNode) history() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprint(n.calls)
}

// app is a fake application in a temporary directory: it is healthy while
// the file "healthy" exists; its scripts log their runs to "runs".
type app struct {
	dir string
}

func newApp(t *testing.T, startMakesHealthy bool) (*app, AppScripts, Spec) {
	t.Helper()
	a := &app{dir: t.TempDir()}
	start := `echo "start $FARM_NODE $FARM_VIP $FARM_ACTION" >> "$D/runs"`
	if startMakesHealthy {
		start += `; touch "$D/healthy"`
	}
	scripts := AppScripts{
		Start: a.write("start.sh", start),
		// A stop script that needs the force retry to succeed.
		Stop:    a.write("stop.sh", `echo "stop $1" >> "$D/runs"; [ "$1" = force ] || exit 1; rm -f "$D/healthy"`),
		Timeout: 30 * time.Second,
	}
	spec := Spec{Name: "app", Type: TypeScript, Target: a.write("check.sh", `test -f "$D/healthy" || { echo "no healthy file"; exit 1; }`),
		Interval: MinInterval, Timeout: 10 * time.Second, Fall: 2, Rise: 2, Action: ActionRestart}
	return a, scripts, spec
}

func (a *app) write(name, body string) string {
	p := filepath.Join(a.dir, name)
	// The scripts find the app directory in $D; set it in the script itself
	// since the Monitor's environment is the test's.
	if err := os.WriteFile(p, []byte("#!/bin/sh\nD="+a.dir+"\n"+body+"\n"), 0o755); err != nil {
		panic(err)
	}
	return p
}

func (a *app) setHealthy(t *testing.T, ok bool) {
	t.Helper()
	p := filepath.Join(a.dir, "healthy")
	var err error
	if ok {
		err = os.WriteFile(p, nil, 0o644)
	} else {
		err = os.Remove(p)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (a *app) runs() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "runs"))
	return string(b)
}

// runMonitor starts m.Run and stops it at the end of the test.
func runMonitor(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func whats(ev *events.Ring) string {
	var w []string
	for _, e := range ev.List(time.Time{}, 0) {
		w = append(w, e.What)
	}
	return strings.Join(w, " ")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestMonitorRestartAndRejoin(t *testing.T) {
	a, scripts, spec := newApp(t, true)
	a.setHealthy(t, true)
	node := &fakeNode{}
	ev := events.NewRing(0, testLogger(t))
	m, err := New([]Spec{spec}, scripts, node, ev, "web1", "10.0.0.100", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)

	waitFor(t, "checker to pass", 30*time.Second, func() bool { return m.Status().Checks[0].State == Passing })
	if h := node.history(); h != "[]" {
		t.Fatalf("SetFailed calls before any failure: %s", h)
	}

	// The application dies: the node leaves, the app is restarted (stop
	// fails once and is forced), the checker passes again, the node rejoins.
	a.setHealthy(t, false)
	waitFor(t, "leave and rejoin", 60*time.Second, func() bool { return node.history() == "[true false]" })

	if got, want := a.runs(), "stop \nstop force\nstart web1 10.0.0.100 start\n"; got != want {
		t.Errorf("script runs = %q, want %q", got, want)
	}
	if w, want := whats(ev), "checker.passing checker.failing recovery.restart recovery.restarted checker.passing recovery.rejoin"; w != want {
		t.Errorf("events = %q, want %q", w, want)
	}
	st := m.Status()
	if st.Phase != PhaseServing || st.Restarts != 1 || st.Checks[0].State != Passing {
		t.Errorf("Status = %+v", st)
	}
	if !strings.Contains(node.why[0], "checker app failed") {
		t.Errorf("leave reason %q", node.why[0])
	}
}

func TestMonitorMaxLoopThenReset(t *testing.T) {
	// The start script does not cure the application: restarts loop until
	// the limit, then the node stays out until an operator resets it.
	a, scripts, spec := newApp(t, false)
	scripts.MaxRestarts = 2
	node := &fakeNode{}
	ev := events.NewRing(0, testLogger(t))
	m, err := New([]Spec{spec}, scripts, node, ev, "web1", "10.0.0.100", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)

	waitFor(t, "the restart limit", 60*time.Second, func() bool { return m.Status().Phase == PhaseStopped })
	if got := strings.Count(a.runs(), "start "); got != 2 {
		t.Errorf("start ran %d times, want 2", got)
	}
	if w := whats(ev); !strings.HasSuffix(w, "recovery.maxloop") {
		t.Errorf("events = %q, want them to end with recovery.maxloop", w)
	}
	// Every leave, no rejoin.
	if h := node.history(); strings.Contains(h, "false") {
		t.Fatalf("SetFailed history %s: rejoined while the app is broken", h)
	}

	// The operator repairs the application and starts the node.
	a.setHealthy(t, true)
	m.Reset()
	waitFor(t, "rejoin after the reset", 60*time.Second, func() bool { return strings.HasSuffix(node.history(), "true false]") })
	if st := m.Status(); st.Phase != PhaseServing || st.Restarts != 0 {
		t.Errorf("Status after reset = %+v", st)
	}
	// The checker may have passed before the reset was handled; what counts
	// is a fresh pass after it.
	if w := whats(ev); !strings.HasSuffix(w, "recovery.reset checker.passing recovery.rejoin") {
		t.Errorf("events = %q", w)
	}
}

func TestMonitorPauseAndStartStopApp(t *testing.T) {
	a, scripts, spec := newApp(t, true)
	a.setHealthy(t, true)
	node := &fakeNode{}
	ev := events.NewRing(0, nil)
	m, err := New([]Spec{spec}, scripts, node, ev, "web1", "10.0.0.100", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	waitFor(t, "checker to pass", 30*time.Second, func() bool { return m.Status().Checks[0].State == Passing })

	// An operator's stop: pause, then stop the app; no restart follows.
	m.Pause()
	waitFor(t, "pause", 30*time.Second, func() bool { return m.Status().Phase == PhasePaused })
	if res := m.StopApp(context.Background()); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, "checker to fail", 30*time.Second, func() bool { return m.Status().Checks[0].State == Failing })
	if h := node.history(); h != "[]" {
		t.Fatalf("paused monitor acted: SetFailed %s", h)
	}
	// An operator's start: start the app, reset; the node is out until the
	// checker passes again.
	if res := m.StartApp(context.Background()); res.Err != nil {
		t.Fatal(res.Err)
	}
	m.Reset()
	waitFor(t, "rejoin", 30*time.Second, func() bool { return node.history() == "[true false]" })
	if got := a.runs(); got != "stop \nstop force\nstart web1 10.0.0.100 start\n" {
		t.Errorf("runs = %q", got)
	}
}

func TestMonitorWaitAction(t *testing.T) {
	a, scripts, spec := newApp(t, true)
	a.setHealthy(t, true)
	spec.Action = ActionWait
	node := &fakeNode{}
	ev := events.NewRing(0, nil)
	m, err := New([]Spec{spec}, scripts, node, ev, "web1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	waitFor(t, "checker to pass", 30*time.Second, func() bool { return m.Status().Checks[0].State == Passing })
	a.setHealthy(t, false)
	waitFor(t, "leave", 30*time.Second, func() bool { return node.history() == "[true]" })
	a.setHealthy(t, true)
	waitFor(t, "rejoin", 30*time.Second, func() bool { return node.history() == "[true false]" })
	if got := a.runs(); got != "" {
		t.Errorf("action wait ran scripts: %q", got)
	}
}

// TestNewRejects covers the guards New keeps against specs no config would
// make; everything else the config validates.
func TestNewRejects(t *testing.T) {
	ev := events.NewRing(0, nil)
	zeroInterval := completeSpec(TypeTCP, "127.0.0.1:80")
	zeroInterval.Interval = 0
	tests := []struct {
		name    string
		specs   []Spec
		app     AppScripts
		wantErr string
	}{
		{"unknown type", []Spec{completeSpec("ping", "x")}, AppScripts{Start: "/s"}, `unknown type "ping"`},
		{"zero interval", []Spec{zeroInterval}, AppScripts{}, "interval 0s is not positive"},
		{"duplicate names", []Spec{completeSpec(TypeTCP, "127.0.0.1:80"), completeSpec(TypeTCP, "127.0.0.1:81")}, AppScripts{}, `two checkers are named "tcp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.specs, tt.app, &fakeNode{}, ev, "n", "", nil)
			wantResult(t, err, tt.wantErr)
		})
	}
	m, err := New(nil, AppScripts{}, &fakeNode{}, ev, "n", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := m.Run(ctx); err == nil {
		t.Fatal("second Run did not fail")
	}
}
