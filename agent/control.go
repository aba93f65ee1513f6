package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/member"
	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// SetFailed is the hook for the application checkers: a failed application
// takes the node out of the farm until it passes again.
func (a *Agent) SetFailed(failed bool, reason string) {
	before, after, err := a.local.update(func(s *localState) { s.AppFailed = failed })
	if err != nil {
		a.log.Error("Publishing the node state failed.", "err", err)
	}
	if before.AppFailed != after.AppFailed {
		a.log.Info("Application health changed.", "failed", failed, "reason", reason, "state", after.State())
	}
}

// onAction runs an operator action (stop, start, drain) on this node; it is
// called for local requests and for requests other nodes forward.
func (a *Agent) onAction(action string) error {
	in, err := intentForAction(action)
	if err != nil {
		return err
	}
	before, after, err := a.local.update(func(s *localState) {
		if in == IntentUp && s.Intent == IntentStopped && a.actingCheckers() {
			// A stopped node's checkers are paused; started again, it
			// waits for them to pass (the monitor clears this) instead of
			// showing up and failing a moment later.
			s.AppFailed = true
		}
		s.Intent = in
	})
	if err != nil {
		return err
	}
	a.log.Info("Operator intent changed.", "from", before.Intent, "to", after.Intent, "state", after.State())
	a.events.Add(events.Event{Node: a.cfg.Node.Name, What: "operator." + action, Why: "requested through the API"})
	if in != IntentDraining {
		a.cancelDrain()
	}
	switch in {
	case IntentDraining:
		a.startDrain()
	case IntentStopped:
		a.stopApp()
	case IntentUp:
		a.tasks.spawn(func(ctx context.Context) {
			if a.cfg.App.Start != "" {
				r := a.monitor.StartApp(ctx)
				a.log.Info("Application start script ran.", "exit", r.ExitCode, "err", r.Err)
			}
			a.monitor.Reset()
		})
	}
	return nil
}

// actingCheckers reports whether any checker decides membership.
func (a *Agent) actingCheckers() bool {
	for _, c := range a.cfg.CheckerSpecs() {
		if c.Action != checkers.ActionNone {
			return true
		}
	}
	return false
}

// stopApp pauses the checkers (a stopped node must not be "recovered") and
// runs the application's stop script, if any, in the background.
func (a *Agent) stopApp() {
	a.monitor.Pause()
	if a.cfg.App.Stop == "" {
		return
	}
	a.tasks.spawn(func(ctx context.Context) {
		// A stopped node still answers its buckets until its announced
		// switch time (the others start then): stopping the application
		// before would refuse those connections.
		a.waitNotAnswering(ctx, plan.MaxSwitchAhead+time.Second)
		r := a.monitor.StopApp(ctx)
		a.log.Info("Application stop script ran.", "exit", r.ExitCode, "err", r.Err)
	})
}

// answering reports whether this node's data path still takes new
// connections for some bucket (its own, or one it releases at a switch).
func (a *Agent) answering() bool {
	p := a.plan.Load()
	return p != nil && p.Serving && p.Owned(a.settings.Self) > 0
}

// waitNotAnswering waits, at most max, until this node takes no new
// connection.
func (a *Agent) waitNotAnswering(ctx context.Context, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for a.answering() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			a.log.Warn("The node still answers new connections; stopping the application anyway.", "waited", max)
			return
		case <-tick.C:
		}
	}
}

// cancelDrain ends a drain in progress (a start or stop overrides it).
func (a *Agent) cancelDrain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drainCancel != nil {
		a.drainCancel()
		a.drainCancel = nil
	}
}

// drainPoll is how often a drain counts the node's flows.
const drainPoll = 500 * time.Millisecond

// startDrain waits, in the background, until the node's established flows
// are gone (or the drain timeout passes), then turns the drain into a stop.
// New connections already go to the others: a draining node owns no
// buckets.
func (a *Agent) startDrain() {
	timeout := a.cfg.Node.DrainTimeout.Duration
	a.mu.Lock()
	if a.drainCancel != nil {
		a.drainCancel()
	}
	ctx, cancel := context.WithTimeout(a.tasks.ctx, timeout)
	a.drainCancel = cancel
	a.mu.Unlock()
	if !a.tasks.spawn(func(context.Context) { defer cancel(); a.drain(ctx, timeout) }) {
		cancel()
	}
}

// drain is the body of startDrain.
func (a *Agent) drain(ctx context.Context, timeout time.Duration) {
	start := time.Now()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	last, lastErr := -1, error(nil) // -1: never counted
wait:
	for {
		n, err := a.flows(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			lastErr = err
			a.log.Warn("Counting flows failed while draining; trying again.", "err", err)
		case err == nil && n == 0 && !a.answering():
			// No flows, and no new ones coming: the node answered its
			// buckets until the switch time it announced.
			a.log.Info("Drain complete: no flows left.", "after", time.Since(start).Round(time.Millisecond))
			break wait
		case err == nil:
			last = n
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return // start/stop overrode the drain, or shutdown
			}
			if last >= 0 {
				a.log.Warn("Drain timed out with flows left; stopping anyway.", "flows", last, "timeout", timeout)
			} else {
				a.log.Warn("Drain timed out without ever counting the flows; stopping anyway.", "timeout", timeout, "err", lastErr)
			}
			break wait
		case <-tick.C:
		}
	}
	_, after, err := a.local.update(func(s *localState) {
		if s.Intent == IntentDraining {
			s.Intent = IntentStopped
		}
	})
	switch {
	case err != nil:
		a.log.Error("Finishing the drain failed.", "err", err)
	case after.Intent == IntentStopped:
		a.events.Add(events.Event{Node: a.cfg.Node.Name, What: "drain.done", Why: "no flows left or drain timeout"})
		a.stopApp()
	}
}

// Status implements console.Farm. It answers from what membership and the
// last gathering know, without waiting on the network.
func (a *Agent) Status(_ context.Context, detail bool) console.Status {
	v := a.members.View()
	st := console.Status{
		Buckets: table.Buckets, Self: a.cfg.Node.Name, Quorum: v.Quorum, Known: v.Known, Healthy: v.Healthy,
		Time: time.Now().UTC(), TableVersion: tableVersion(v.Table),
	}
	if a.witness != nil {
		st.Witness = &console.WitnessStatus{Address: a.cfg.Gossip.Witness, Reachable: a.witness.OK()}
	}
	if p := a.plan.Load(); p != nil {
		st.Serving, st.Why, st.Withheld = p.Serving, p.Why, p.Withheld()
	}
	fd := a.details.latest.Load()
	if !detail {
		fd = nil
	}
	for _, n := range v.Nodes {
		st.Nodes = append(st.Nodes, nodeStatus(n, v, a.cfg.Node.Name, fd))
	}
	if fd != nil {
		st.Warnings = fd.warnings
	}
	return st
}

// tableVersion names a table's content, so clients fetch it only on change.
func tableVersion(t *table.Table) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("%016x", xxhash.Sum64(t[:]))
}

// Table implements console.Farm.
func (a *Agent) Table() console.Table {
	v := a.members.View()
	out := console.Table{Buckets: table.Buckets, Version: tableVersion(v.Table), Names: map[string]string{}}
	if v.Table != nil {
		out.Owners = v.Table[:]
	}
	for _, n := range v.Nodes {
		if n.ID != 0 {
			out.Names[fmt.Sprint(n.ID)] = n.Name
		}
	}
	return out
}

// WhatIf implements console.Farm.
func (a *Agent) WhatIf(c view.Change) (view.WhatIf, error) {
	return view.Plan(a.members.View().Nodes, c)
}

// Act implements console.Farm.
func (a *Agent) Act(ctx context.Context, node, action string) error {
	if _, err := intentForAction(action); err != nil {
		return err
	}
	err := a.members.Act(ctx, node, action)
	if errors.Is(err, member.ErrUnknownNode) {
		return fmt.Errorf("%w: %q", console.ErrNoSuchNode, node)
	}
	return err
}

// Events implements console.Farm.
func (a *Agent) Events(q console.EventQuery) []events.Event {
	return a.events.Find(q.After, q.Node, q.Kind, q.Limit)
}
