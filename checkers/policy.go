package checkers

import (
	"fmt"
	"sort"
	"time"
)

// Recovery limits: SafeKit's maxloop. A restart loop that never cures the
// application must end with the node out of the farm, not with the
// application restarting forever.
const (
	// DefaultMaxRestarts is how many restarts are allowed per window.
	DefaultMaxRestarts = 3
	// DefaultWindow is the window restarts are counted over.
	DefaultWindow = 24 * time.Hour
)

// Phase is where the recovery policy stands.
type Phase int

// Phases of the recovery policy.
const (
	// PhaseServing: the checkers have not taken the node out of the farm.
	PhaseServing Phase = iota
	// PhaseRestarting: the node left the farm; stop and start scripts run.
	PhaseRestarting
	// PhaseRecovering: the node is out of the farm until every checker
	// (except action none) passes, then it rejoins by itself.
	PhaseRecovering
	// PhaseStopped: the node is out of the farm until an operator starts it
	// (Reset): a stop action fired, or the restart limit was reached.
	PhaseStopped
	// PhasePaused: an operator stopped the node; checker failures are
	// expected and not acted on until Reset.
	PhasePaused
)

// String names the phase as shown in status.
func (p Phase) String() string {
	switch p {
	case PhaseServing:
		return "serving"
	case PhaseRestarting:
		return "restarting"
	case PhaseRecovering:
		return "recovering"
	case PhaseStopped:
		return "stopped"
	case PhasePaused:
		return "paused"
	default:
		return fmt.Sprintf("phase(%d)", int(p))
	}
}

// MarshalText writes the phase as its name, for JSON status.
func (p Phase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Do is what a Command asks the driver to do.
type Do int

// What a Command asks for.
const (
	// DoNothing: only record the command's event.
	DoNothing Do = iota
	// DoLeave: take the node out of the farm (Node.SetFailed(true, Why)).
	DoLeave
	// DoRejoin: put the node back (Node.SetFailed(false, Why)).
	DoRejoin
	// DoRestart: run the stop script, then the start script, then report
	// to Policy.RestartDone.
	DoRestart
	// DoResetChecks: reset every checker's Smoother, since the policy now
	// considers every checker Unknown.
	DoResetChecks
)

// Command is one step the driver carries out, in order, and records as an
// event when What is set.
type Command struct {
	// Do is the action to carry out.
	Do Do
	// What is the event name ("" records no event).
	What string
	// Why explains it, in the event and in Node.SetFailed.
	Why string
}

// Policy is the recovery state machine: it turns smoothed checker states
// into leave, restart and rejoin commands. It is pure (the caller passes the
// time) and not safe for concurrent use; the Monitor owns one.
type Policy struct {
	max      int
	window   time.Duration
	actions  map[string]string // checker name -> action
	status   map[string]State
	phase    Phase
	restarts []time.Time // restart times within the window, oldest first
}

// NewPolicy returns a policy in PhaseServing for the checkers named in
// actions (name -> Action*), allowing maxRestarts restarts per window
// (defaults when <= 0).
func NewPolicy(actions map[string]string, maxRestarts int, window time.Duration) *Policy {
	if maxRestarts <= 0 {
		maxRestarts = DefaultMaxRestarts
	}
	if window <= 0 {
		window = DefaultWindow
	}
	p := &Policy{max: maxRestarts, window: window, actions: map[string]string{}, status: map[string]State{}}
	for n, a := range actions {
		p.actions[n] = a
		p.status[n] = Unknown
	}
	return p
}

// Phase returns the current phase.
func (p *Policy) Phase() Phase { return p.phase }

// Restarts returns how many restarts count against the limit at now.
func (p *Policy) Restarts(now time.Time) int {
	p.prune(now)
	return len(p.restarts)
}

// Checker records that checker name's smoothed state became st and returns
// what to do about it.
func (p *Policy) Checker(name string, st State, now time.Time) []Command {
	act, ok := p.actions[name]
	if !ok {
		return nil
	}
	p.status[name] = st
	if act == ActionNone {
		return nil
	}
	switch st {
	case Failing:
		return p.failing(name, act, now)
	case Passing:
		if p.phase == PhaseRecovering {
			return p.rejoinIfAllPass()
		}
	}
	return nil
}

func (p *Policy) failing(name, act string, now time.Time) []Command {
	switch p.phase {
	case PhaseRestarting, PhaseStopped, PhasePaused:
		return nil
	}
	switch act {
	case ActionStop:
		p.phase = PhaseStopped
		return []Command{{DoLeave, "recovery.stop",
			fmt.Sprintf("checker %s failed (action stop): the node stays out of the farm until an operator starts it", name)}}
	case ActionWait:
		if p.phase == PhaseRecovering {
			return nil // already out, waiting
		}
		p.phase = PhaseRecovering
		return []Command{{DoLeave, "recovery.wait",
			fmt.Sprintf("checker %s failed (action wait): the node is out of the farm until every checker passes", name)}}
	case ActionRestart:
		p.prune(now)
		if len(p.restarts) >= p.max {
			p.phase = PhaseStopped
			return []Command{{DoLeave, "recovery.maxloop",
				fmt.Sprintf("checker %s failed again after %d restarts within %s: the node stays out of the farm until an operator starts it", name, len(p.restarts), p.window)}}
		}
		p.restarts = append(p.restarts, now)
		p.phase = PhaseRestarting
		return []Command{
			{DoLeave, "", fmt.Sprintf("checker %s failed: restarting the application", name)},
			{DoRestart, "recovery.restart",
				fmt.Sprintf("checker %s failed: restarting the application (restart %d of at most %d within %s)", name, len(p.restarts), p.max, p.window)},
		}
	}
	return nil
}

// RestartDone records that the restart asked for by DoRestart finished;
// err is the scripts' failure, if any. Every checker must then pass again
// (a failing one restarts again, within the limit) before the node rejoins.
func (p *Policy) RestartDone(err error, now time.Time) []Command {
	if p.phase != PhaseRestarting {
		return nil // paused meanwhile: the operator decides
	}
	cmds := []Command{{DoResetChecks, "recovery.restarted", "application restarted: the node rejoins when every checker passes"}}
	if err != nil {
		cmds[0] = Command{DoResetChecks, "recovery.restart-failed",
			fmt.Sprintf("application restart failed (%v): the node rejoins if every checker passes anyway", err)}
	}
	return append(cmds, p.recover()...)
}

// Reset is an operator's start: it clears the restart count and, when the
// node was stopped or paused, takes it out of the farm until every checker
// passes (after a fresh Rise successes each).
func (p *Policy) Reset(now time.Time) []Command {
	p.restarts = nil
	switch p.phase {
	case PhaseStopped, PhasePaused:
		cmds := []Command{{DoResetChecks, "", ""}}
		if p.acting() {
			cmds = append(cmds, Command{DoLeave, "recovery.reset", "operator started the node: restart count cleared; the node joins when every checker passes"})
		} else {
			// Nothing to wait for: leaving would only make the node flap
			// failed and up again within a millisecond.
			cmds = append(cmds, Command{DoNothing, "recovery.reset", "operator started the node: restart count cleared"})
		}
		return append(cmds, p.recover()...)
	}
	return []Command{{DoNothing, "recovery.reset", "operator reset the checkers: restart count cleared"}}
}

// Pause is an operator's stop: the application is expected to go down, so
// checker failures are not acted on until Reset.
func (p *Policy) Pause(now time.Time) []Command {
	if p.phase == PhasePaused {
		return nil
	}
	p.phase = PhasePaused
	return []Command{{DoNothing, "recovery.pause", "operator stopped the node: checker failures are not acted on until it starts again"}}
}

// recover enters PhaseRecovering with every checker Unknown.
func (p *Policy) recover() []Command {
	p.phase = PhaseRecovering
	for n := range p.status {
		p.status[n] = Unknown
	}
	return p.rejoinIfAllPass()
}

// acting reports whether any checker's verdict decides membership.
func (p *Policy) acting() bool {
	for _, a := range p.actions {
		if a != ActionNone {
			return true
		}
	}
	return false
}

func (p *Policy) rejoinIfAllPass() []Command {
	for n, a := range p.actions {
		if a != ActionNone && p.status[n] != Passing {
			return nil
		}
	}
	p.phase = PhaseServing
	return []Command{{DoRejoin, "recovery.rejoin", "every checker passes: the node rejoins the farm"}}
}

func (p *Policy) prune(now time.Time) {
	i := sort.Search(len(p.restarts), func(i int) bool { return now.Sub(p.restarts[i]) < p.window })
	p.restarts = p.restarts[i:]
}
