package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/member"
	"github.com/webfarm/farm/farm/table"
)

// setIntent records an operator's wish, persists it and republishes the
// node's state so every node recomputes its table.
func (a *Agent) setIntent(in Intent) error {
	a.mu.Lock()
	prev := a.intent
	a.intent = in
	st := effectiveState(a.intent, a.appFailed)
	if a.drainCancel != nil && in != IntentDraining {
		a.drainCancel()
		a.drainCancel = nil
	}
	a.mu.Unlock()
	if err := saveIntent(a.cfg.StateDir, in); err != nil {
		return err
	}
	a.log.Info("Operator intent changed.", "from", prev, "to", in, "state", st)
	return a.members.SetState(st)
}

// SetFailed is the hook for the application checkers: a failed application
// takes the node out of the farm until it passes again.
func (a *Agent) SetFailed(failed bool, reason string) {
	a.mu.Lock()
	changed := a.appFailed != failed
	a.appFailed = failed
	st := effectiveState(a.intent, a.appFailed)
	a.mu.Unlock()
	if !changed {
		return
	}
	a.log.Info("Application health changed.", "failed", failed, "reason", reason, "state", st)
	if err := a.members.SetState(st); err != nil {
		a.log.Error("Publishing the node state failed.", "err", err)
	}
}

// onAction runs an operator action on this node.
func (a *Agent) onAction(action string) error {
	in, err := intentForAction(action)
	if err != nil {
		return err
	}
	if in == IntentUp {
		a.mu.Lock()
		if a.intent == IntentStopped && a.actingCheckers() {
			// A stopped node's checkers are paused; started again, it
			// waits for them to pass (the monitor clears this) instead of
			// showing up and failing a moment later.
			a.appFailed = true
		}
		a.mu.Unlock()
	}
	if err := a.setIntent(in); err != nil {
		return err
	}
	a.events.Add(events.Event{Node: a.cfg.Node.Name, What: "operator." + action, Why: "requested through the API"})
	switch in {
	case IntentDraining:
		a.startDrain()
	case IntentStopped:
		a.stopApp()
	case IntentUp:
		go func() {
			if a.cfg.App.Start != "" {
				r := a.monitor.StartApp(a.runCtx)
				a.log.Info("Application start script ran.", "exit", r.ExitCode, "err", r.Err)
			}
			a.monitor.Reset()
		}()
	}
	return nil
}

// actingCheckers reports whether any checker decides membership.
func (a *Agent) actingCheckers() bool {
	for _, c := range a.cfg.Checker {
		if c.Action != "none" {
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
	go func() {
		r := a.monitor.StopApp(a.runCtx)
		a.log.Info("Application stop script ran.", "exit", r.ExitCode, "err", r.Err)
	}()
}

// startDrain waits until the node's established flows are gone (or the drain
// timeout passes), then turns the drain into a stop. New connections already
// go to the others: a draining node owns no buckets.
func (a *Agent) startDrain() {
	ctx, cancel := context.WithTimeout(a.runCtx, a.drainTimeout)
	a.mu.Lock()
	if a.drainCancel != nil {
		a.drainCancel()
	}
	a.drainCancel = cancel
	a.mu.Unlock()
	go func() {
		defer cancel()
		start := time.Now()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := a.flows(ctx)
			if err != nil {
				a.log.Warn("Counting flows failed while draining.", "err", err)
			} else if n == 0 {
				a.log.Info("Drain complete: no flows left.", "after", time.Since(start).Round(time.Millisecond))
				break
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.Canceled) {
					return // start/stop overrode the drain, or shutdown
				}
				a.log.Warn("Drain timed out with flows left; stopping anyway.", "flows", n, "timeout", a.drainTimeout)
			case <-tick.C:
				continue
			}
			break
		}
		a.mu.Lock()
		still := a.intent == IntentDraining
		a.mu.Unlock()
		if still {
			if err := a.setIntent(IntentStopped); err != nil {
				a.log.Error("Finishing the drain failed.", "err", err)
				return
			}
			a.events.Add(events.Event{Node: a.cfg.Node.Name, What: "drain.done", Why: "no flows left or drain timeout"})
			a.stopApp()
		}
	}()
}

// flows counts this node's established flows to the VIPs.
func (a *Agent) flows(ctx context.Context) (int, error) {
	return countFlows(ctx, a.spec.Self, a.spec.VIPs)
}

// Status implements console.Farm.
func (a *Agent) Status() console.Status {
	v := a.members.View()
	st := console.Status{Buckets: table.Buckets, Self: a.cfg.Node.Name, Quorum: v.Quorum, Time: time.Now().UTC()}
	for _, n := range v.Nodes {
		b := 0
		if n.ID != 0 && n.Alive {
			b = v.Shares[n.ID]
		}
		st.Nodes = append(st.Nodes, console.NodeStatus{
			Name: n.Name, ID: int(n.ID), State: string(n.State), Buckets: b,
			Share: float64(b) / table.Buckets, Weight: int(n.Weight), Addr: n.Addr,
			Self: n.Name == a.cfg.Node.Name,
		})
	}
	return st
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
func (a *Agent) Events(limit int) any {
	return a.events.List(time.Time{}, limit)
}
