package checkers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	type step struct {
		at    time.Duration // since the test's start
		op    string        // "fail NAME", "pass NAME", "done", "donefail", "reset", "pause"
		want  string        // the commands' Do, space separated
		what  string        // when set, some command must record this event
		phase Phase
	}
	// Short names for the wanted commands.
	doName := map[Do]string{DoNothing: "note", DoLeave: "leave", DoRejoin: "rejoin", DoRestart: "restart", DoResetChecks: "resetchecks"}
	restartCycle := func(at time.Duration) []step {
		return []step{
			{at, "fail web", "leave restart", "recovery.restart", PhaseRestarting},
			{at, "done", "resetchecks", "recovery.restarted", PhaseRecovering},
			{at, "pass web", "rejoin", "recovery.rejoin", PhaseServing},
		}
	}
	cat := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	h := time.Hour
	tests := []struct {
		name    string
		actions map[string]string
		max     int
		window  time.Duration
		steps   []step
	}{
		{"first pass does nothing", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "pass web", "", "", PhaseServing},
		}},
		{"restart then rejoin", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "pass web", "", "", PhaseServing},
			{1, "fail web", "leave restart", "recovery.restart", PhaseRestarting},
			{2, "pass web", "", "", PhaseRestarting}, // during the restart: ignored
			{3, "fail web", "", "", PhaseRestarting},
			{4, "done", "resetchecks", "recovery.restarted", PhaseRecovering},
			{5, "pass web", "rejoin", "recovery.rejoin", PhaseServing},
		}},
		{"failed restart waits for the checker", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "fail web", "leave restart", "", PhaseRestarting},
			{1, "donefail", "resetchecks", "recovery.restart-failed", PhaseRecovering},
			{2, "fail web", "leave restart", "recovery.restart", PhaseRestarting},
			{3, "done", "resetchecks", "", PhaseRecovering},
			{4, "pass web", "rejoin", "", PhaseServing},
		}},
		{"maxloop within the window", map[string]string{"web": ActionRestart}, 3, 24 * h, cat(
			restartCycle(0), restartCycle(1*h), restartCycle(2*h),
			[]step{
				{3 * h, "fail web", "leave", "recovery.maxloop", PhaseStopped},
				{3 * h, "pass web", "", "", PhaseStopped},
				{3 * h, "fail web", "", "", PhaseStopped},
				{4 * h, "reset", "resetchecks leave", "recovery.reset", PhaseRecovering},
				{4 * h, "pass web", "rejoin", "", PhaseServing},
				// The count was cleared: restarts are allowed again.
				{5 * h, "fail web", "leave restart", "recovery.restart", PhaseRestarting},
			})},
		{"window expiry allows restarts again", map[string]string{"web": ActionRestart}, 2, h, cat(
			restartCycle(0), restartCycle(30*time.Minute),
			// The restart at 0 has left the window; the one at 30m has not.
			restartCycle(61*time.Minute),
			[]step{{80 * time.Minute, "fail web", "leave", "recovery.maxloop", PhaseStopped}},
		)},
		{"window boundary is exclusive", map[string]string{"web": ActionRestart}, 1, h, cat(
			restartCycle(0),
			[]step{{h, "fail web", "leave restart", "recovery.restart", PhaseRestarting}},
		)},
		{"stop action waits for an operator", map[string]string{"db": ActionStop}, 0, 0, []step{
			{0, "fail db", "leave", "recovery.stop", PhaseStopped},
			{1, "pass db", "", "", PhaseStopped},
			{2, "reset", "resetchecks leave", "recovery.reset", PhaseRecovering},
			{3, "pass db", "rejoin", "", PhaseServing},
		}},
		{"wait action leaves and rejoins by itself", map[string]string{"link": ActionWait}, 0, 0, []step{
			{0, "pass link", "", "", PhaseServing},
			{1, "fail link", "leave", "recovery.wait", PhaseRecovering},
			{2, "pass link", "rejoin", "recovery.rejoin", PhaseServing},
		}},
		{"none action only records", map[string]string{"x": ActionNone, "web": ActionRestart}, 0, 0, []step{
			{0, "fail x", "", "", PhaseServing},
			{1, "fail web", "leave restart", "", PhaseRestarting},
			{2, "done", "resetchecks", "", PhaseRecovering},
			{3, "pass web", "rejoin", "", PhaseServing}, // x still failing: does not block
		}},
		{"rejoin needs every checker", map[string]string{"web": ActionRestart, "link": ActionWait}, 0, 0, []step{
			{0, "fail link", "leave", "recovery.wait", PhaseRecovering},
			{1, "fail web", "leave restart", "", PhaseRestarting},
			{2, "done", "resetchecks", "", PhaseRecovering},
			{3, "pass web", "", "", PhaseRecovering},
			{4, "pass link", "rejoin", "", PhaseServing},
		}},
		{"stop wins while recovering", map[string]string{"db": ActionStop, "link": ActionWait}, 0, 0, []step{
			{0, "fail link", "leave", "", PhaseRecovering},
			{1, "fail db", "leave", "recovery.stop", PhaseStopped},
			{2, "pass link", "", "", PhaseStopped},
		}},
		{"pause ignores failures until reset", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "pass web", "", "", PhaseServing},
			{1, "pause", "note", "recovery.pause", PhasePaused},
			{2, "fail web", "", "", PhasePaused},
			{3, "reset", "resetchecks leave", "recovery.reset", PhaseRecovering},
			{4, "pass web", "rejoin", "", PhaseServing},
		}},
		{"pause during a restart", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "fail web", "leave restart", "", PhaseRestarting},
			{1, "pause", "note", "", PhasePaused},
			{2, "done", "", "", PhasePaused},
			{3, "reset", "resetchecks leave", "", PhaseRecovering},
		}},
		{"reset while serving clears the count", map[string]string{"web": ActionRestart}, 1, 24 * h, cat(
			restartCycle(0),
			[]step{
				{1, "reset", "note", "recovery.reset", PhaseServing},
				{2, "fail web", "leave restart", "recovery.restart", PhaseRestarting},
			})},
		{"unknown checker is ignored", map[string]string{"web": ActionRestart}, 0, 0, []step{
			{0, "fail other", "", "", PhaseServing},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			p := NewPolicy(tt.actions, tt.max, tt.window)
			for i, s := range tt.steps {
				now := start.Add(s.at)
				var cmds []Command
				op, name, _ := strings.Cut(s.op, " ")
				switch op {
				case "fail":
					cmds = p.Checker(name, Failing, now)
				case "pass":
					cmds = p.Checker(name, Passing, now)
				case "done":
					cmds = p.RestartDone(nil, now)
				case "donefail":
					cmds = p.RestartDone(errors.New("start.sh exited with code 1"), now)
				case "reset":
					cmds = p.Reset(now)
				case "pause":
					cmds = p.Pause(now)
				default:
					t.Fatalf("bad op %q", s.op)
				}
				var got []string
				var whats []string
				for _, c := range cmds {
					got = append(got, doName[c.Do])
					whats = append(whats, c.What)
					if c.What != "" && c.Why == "" {
						t.Errorf("step %d (%s): event %s without a reason", i, s.op, c.What)
					}
				}
				if strings.Join(got, " ") != s.want {
					t.Fatalf("step %d (%s at %v): commands %q, want %q", i, s.op, s.at, strings.Join(got, " "), s.want)
				}
				if s.what != "" && !strings.Contains(fmt.Sprint(whats), s.what) {
					t.Fatalf("step %d (%s): events %v, want %s", i, s.op, whats, s.what)
				}
				if p.Phase() != s.phase {
					t.Fatalf("step %d (%s): phase %v, want %v", i, s.op, p.Phase(), s.phase)
				}
			}
		})
	}
}

func TestPolicyRestartsCount(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := NewPolicy(map[string]string{"web": ActionRestart}, 0, 0)
	for i := 0; i < 2; i++ {
		now := start.Add(time.Duration(i) * time.Hour)
		p.Checker("web", Failing, now)
		p.RestartDone(nil, now)
		p.Checker("web", Passing, now)
	}
	if got := p.Restarts(start.Add(2 * time.Hour)); got != 2 {
		t.Errorf("Restarts = %d, want 2", got)
	}
	if got := p.Restarts(start.Add(DefaultWindow + 30*time.Minute)); got != 1 {
		t.Errorf("Restarts after the first left the window = %d, want 1", got)
	}
	if got := p.Restarts(start.Add(2 * DefaultWindow)); got != 0 {
		t.Errorf("Restarts much later = %d, want 0", got)
	}
}
