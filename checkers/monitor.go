package checkers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/checkers/script"
	"github.com/webfarm/farm/farm/events"
)

// Node is how the Monitor takes this node out of the farm and puts it back.
// The agent implements it; calls come from the Monitor's goroutine and must
// not block for long. Both calls are idempotent from the Monitor's view:
// SetFailed(true, ...) may come again with a newer reason.
type Node interface {
	SetFailed(failed bool, reason string)
}

// AppScripts are the application's scripts and recovery limits, filled by
// the agent from the [app] section.
type AppScripts struct {
	// Start and Stop are the scripts a restart runs (stop, then start).
	Start, Stop string
	// Timeout bounds each script run (script.DefaultTimeout when zero).
	Timeout time.Duration
	// MaxRestarts is how many restarts are allowed per Window before the
	// node stays out of the farm (DefaultMaxRestarts when zero).
	MaxRestarts int
	// Window is the period restarts are counted over (DefaultWindow when zero).
	Window time.Duration
}

// CheckStatus is one checker's state, for the console and `farm status`.
type CheckStatus struct {
	// Name, Type, Target and Action are the checker's settings.
	Name, Type, Target, Action string
	// State is the smoothed verdict.
	State State
	// LastError is the last probe's failure ("" when it passed).
	LastError string
	// LastCheck is when the last probe started.
	LastCheck time.Time
	// Since is when State last changed.
	Since time.Time
}

// Status is a snapshot of the Monitor.
type Status struct {
	// Phase is where the recovery policy stands.
	Phase Phase
	// Restarts counts the restarts within the current window.
	Restarts int
	// Checks lists the checkers in configuration order.
	Checks []CheckStatus
}

// Monitor runs every checker of a node, smooths their results and carries
// out the recovery policy. New starts nothing; Run does the work.
type Monitor struct {
	checks   []*check
	policy   *Policy
	runner   *script.Runner
	node     Node
	ev       *events.Ring
	nodeName string
	log      *slog.Logger
	now      func() time.Time

	results chan result
	running atomic.Bool

	opsMu  sync.Mutex
	ops    []func(time.Time) []Command // Reset and Pause requests, in order
	opsSig chan struct{}

	statusMu sync.Mutex
	status   Status
}

type check struct {
	spec     Spec
	probe    Probe
	smoother Smoother
}

type result struct {
	i       int
	started time.Time
	err     error
}

// New prepares a Monitor for specs, which are complete and valid
// (config.CheckerSpecs makes them so; New does not check them again). app
// holds the scripts a restart runs; node is told when the node must leave or
// may rejoin the farm; every decision is recorded in ev. nodeName and vip are
// given to scripts as FARM_NODE and FARM_VIP. New starts nothing.
//
// New fails only on specs the Monitor cannot run at all, which is a bug in
// the caller: an unknown type, an interval that is not positive, or two
// specs with one name (the recovery policy tells checkers apart by name).
func New(specs []Spec, app AppScripts, node Node, ev *events.Ring, nodeName, vip string, log *slog.Logger) (*Monitor, error) {
	if node == nil || ev == nil {
		return nil, errors.New("checkers: New needs a Node and an events ring")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "checkers")
	env := []string{"FARM_NODE=" + nodeName, "FARM_VIP=" + vip}

	m := &Monitor{
		runner: &script.Runner{StartPath: app.Start, StopPath: app.Stop, Timeout: app.Timeout, Env: env, Log: log},
		node:   node, ev: ev, nodeName: nodeName, log: log, now: time.Now,
		results: make(chan result),
		opsSig:  make(chan struct{}, 1),
	}
	actions := make(map[string]string, len(specs))
	for _, s := range specs {
		if s.Interval <= 0 {
			return nil, fmt.Errorf("checkers: checker %q: interval %v is not positive (specs come complete from the config)", s.Name, s.Interval)
		}
		if _, dup := actions[s.Name]; dup {
			return nil, fmt.Errorf("checkers: two checkers are named %q", s.Name)
		}
		p, err := NewProbe(s, env)
		if err != nil {
			return nil, err
		}
		m.checks = append(m.checks, &check{spec: s, probe: p, smoother: Smoother{Fall: s.Fall, Rise: s.Rise}})
		m.status.Checks = append(m.status.Checks, CheckStatus{Name: s.Name, Type: s.Type, Target: s.Target, Action: s.Action})
		actions[s.Name] = s.Action
	}
	m.policy = NewPolicy(actions, app.MaxRestarts, app.Window)
	return m, nil
}

// StartApp runs the start script now (FARM_ACTION=start), never at the same
// time as another script of this node. For the agent's start-up and an
// operator's start.
func (m *Monitor) StartApp(ctx context.Context) script.Result { return m.runner.Start(ctx) }

// StopApp runs the stop script now, retrying once with "force" if it fails.
// For an operator's stop; call Pause first so the checkers do not restart
// what the operator stopped.
func (m *Monitor) StopApp(ctx context.Context) script.Result { return m.runner.Stop(ctx) }

// Reset is an operator's start: the restart count is cleared and, if the
// checkers had stopped the node (action stop, restart limit) or Pause was
// called, the node is kept out of the farm until every checker passes again.
// It returns at once; Run carries it out.
func (m *Monitor) Reset() { m.enqueue(m.policy.Reset) }

// Pause is an operator's stop: checker failures are recorded but not acted
// on until Reset. It returns at once; Run carries it out.
func (m *Monitor) Pause() { m.enqueue(m.policy.Pause) }

func (m *Monitor) enqueue(op func(time.Time) []Command) {
	m.opsMu.Lock()
	m.ops = append(m.ops, op)
	m.opsMu.Unlock()
	select {
	case m.opsSig <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of every checker and of the recovery phase.
func (m *Monitor) Status() Status {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	s := m.status
	s.Checks = append([]CheckStatus(nil), m.status.Checks...)
	return s
}

// Run probes every checker until ctx ends, then waits for its probes and
// any restart in flight (their scripts are killed) and returns nil. It may
// be called once.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("checkers: Monitor.Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	m.log.Info("Checkers started.", "checkers", len(m.checks))
	for i := range m.checks {
		wg.Go(func() { m.probeLoop(ctx, i) })
	}
	restartDone := make(chan error, 1)
	var epoch time.Time // results of probes started before it are stale
	for {
		var cmds []Command
		select {
		case <-ctx.Done():
			m.log.Info("Checkers stopped.")
			return nil
		case r := <-m.results:
			// While the application restarts its probes mean nothing; after
			// a reset, results of probes started before it are stale.
			if m.policy.Phase() == PhaseRestarting || r.started.Before(epoch) {
				continue
			}
			cmds = m.observe(r)
		case err := <-restartDone:
			cmds = m.policy.RestartDone(err, m.now())
		case <-m.opsSig:
			m.opsMu.Lock()
			ops := m.ops
			m.ops = nil
			m.opsMu.Unlock()
			for _, op := range ops {
				cmds = append(cmds, op(m.now())...)
			}
		}
		for _, c := range cmds {
			m.exec(ctx, c, &wg, restartDone, &epoch)
		}
		m.statusMu.Lock()
		m.status.Phase = m.policy.Phase()
		m.status.Restarts = m.policy.Restarts(m.now())
		m.statusMu.Unlock()
	}
}

// observe feeds one probe result to its smoother and, on a change of
// state, records it and asks the policy what to do.
func (m *Monitor) observe(r result) []Command {
	c := m.checks[r.i]
	st, changed := c.smoother.Observe(r.err == nil)
	m.statusMu.Lock()
	cs := &m.status.Checks[r.i]
	cs.State, cs.LastCheck, cs.LastError = st, r.started, ""
	if r.err != nil {
		cs.LastError = r.err.Error()
	}
	if changed {
		cs.Since = r.started
	}
	m.statusMu.Unlock()
	if r.err != nil {
		m.log.Debug("Checker probe failed.", "checker", c.spec.Name, "error", r.err)
	}
	if !changed {
		return nil
	}
	e := events.Event{Node: m.nodeName, What: "checker." + st.String(),
		Detail: map[string]string{"checker": c.spec.Name, "type": c.spec.Type, "target": c.spec.Target, "action": c.spec.Action}}
	if st == Failing {
		e.Why = fmt.Sprintf("checker %s failed %d times in a row: %v", c.spec.Name, c.smoother.Fall, r.err)
	} else {
		e.Why = fmt.Sprintf("checker %s passed %d times in a row", c.spec.Name, c.smoother.Rise)
	}
	m.ev.Add(e)
	return m.policy.Checker(c.spec.Name, st, m.now())
}

func (m *Monitor) exec(ctx context.Context, c Command, wg *sync.WaitGroup, restartDone chan<- error, epoch *time.Time) {
	if c.What != "" {
		m.ev.Add(events.Event{Node: m.nodeName, What: c.What, Why: c.Why})
	}
	switch c.Do {
	case DoLeave:
		m.node.SetFailed(true, c.Why)
	case DoRejoin:
		m.node.SetFailed(false, c.Why)
	case DoRestart:
		wg.Go(func() {
			err := m.restart(ctx)
			select {
			case restartDone <- err:
			case <-ctx.Done():
			}
		})
	case DoResetChecks:
		*epoch = m.now()
		m.statusMu.Lock()
		for i, ch := range m.checks {
			ch.smoother.Reset()
			m.status.Checks[i].State = Unknown
			m.status.Checks[i].Since = *epoch
		}
		m.statusMu.Unlock()
	}
}

// restart runs the stop script (with its force retry) then the start
// script, whatever the stop script's outcome.
func (m *Monitor) restart(ctx context.Context) error {
	var errs []error
	for _, run := range []func(context.Context) script.Result{m.runner.Stop, m.runner.Start} {
		if res := run(ctx); res.Err != nil {
			errs = append(errs, fmt.Errorf("%w (output: %s)", res.Err, script.LastLine(res.Output, 200)))
		}
	}
	return errors.Join(errs...)
}

// probeLoop runs one checker: a random first delay in [0, interval) spreads
// the checkers (and the nodes) out, then one probe per interval.
func (m *Monitor) probeLoop(ctx context.Context, i int) {
	c := m.checks[i]
	timer := time.NewTimer(rand.N(c.spec.Interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		started := m.now()
		err := c.probe.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		select {
		case m.results <- result{i: i, started: started, err: err}:
		case <-ctx.Done():
			return
		}
		// Keep the cadence, but never probe back to back.
		timer.Reset(max(c.spec.Interval-time.Since(started), MinInterval))
	}
}
