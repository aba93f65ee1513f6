package agent

import (
	"context"
	"time"

	"github.com/webfarm/farm/farm/plan"
)

// kickPlanner tells the planner loop that its input changed. It never
// blocks: one pending kick covers any number of changes, since the loop reads
// the latest view when it runs.
func (a *Agent) kickPlanner() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// planLoop is the only place that plans and applies: it recomputes the plan
// when the view changes, when the plan said it would change by itself, and
// when the node starts leaving, and hands every changed plan to the engine.
// Its timer is never what moves a bucket between live nodes at the right
// moment: a plan carries its planned switch (plan.Switch) and the engine
// makes it at packet time; the timer only brings the plain plan after it,
// so a late timer delays nothing but housekeeping.
// It holds no lock while the engine runs nft, so a slow nft stalls neither
// gossip nor the API, and its one timer stops with it.
func (a *Agent) planLoop(ctx context.Context) error {
	var cur plan.Plan
	leaving := false
	hosts := newHostWatch(a.log, a.kickPlanner)
	if a.hostDial != nil {
		hosts.dial = a.hostDial
	}
	defer hosts.stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var ack chan struct{}
		select {
		case <-ctx.Done():
			return nil
		case <-a.kick:
		case <-timer.C:
		case ack = <-a.leaveReq:
			leaving = true
		}
		in := plan.Input{Leaving: leaving}
		if v := a.view.Load(); v != nil {
			in.View = *v
		}
		in.Hosts = hosts.update(ctx, in.View)
		next, wake := plan.Next(cur, in, a.settings, time.Now())
		if !next.Same(cur) {
			if err := a.engine.Apply(next); err != nil {
				a.log.Error("The data path could not follow the plan in full.", "err", err)
			}
			a.logPlan(cur, next)
			a.plan.Store(&next)
		}
		cur = next
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		} else {
			timer.Stop()
		}
		if ack != nil {
			close(ack)
		}
	}
}

// logPlan reports what an operator wants to know of a plan change.
func (a *Agent) logPlan(prev, next plan.Plan) {
	self := a.settings.Self
	switch {
	case next.Serving != prev.Serving || next.Why != prev.Why:
		if next.Serving {
			a.log.Info("Serving this node's share.", "buckets", next.Owned(self), "pending", next.Pending.Count())
		} else if next.Why != "" {
			a.log.Info("Serving nobody.", "why", next.Why)
		}
	}
	if sw := next.Switch; sw != nil && (prev.Switch == nil || *prev.Switch != *sw) {
		attrs := []any{"releasing", sw.Lose.Len(), "gaining", sw.Gain.Len()}
		if sw.Lose.Len() > 0 {
			attrs = append(attrs, "stop_at", time.Unix(0, sw.Until).UTC().Format(time.StampMicro))
		}
		if sw.Gain.Len() > 0 {
			attrs = append(attrs, "start_at", time.Unix(0, sw.From).UTC().Format(time.StampMicro))
		}
		a.log.Info("Planned switch set: the data path moves these buckets at packet time.", attrs...)
	}
	if next.Reset != nil && !next.ResetUntil.Equal(prev.ResetUntil) {
		a.log.Info("Resetting the dead node's orphaned connections.", "buckets", next.Reset.Len(),
			"until", next.ResetUntil.Format(time.RFC3339))
	}
	if next.Reset == nil && prev.Reset != nil {
		a.log.Info("Reset window closed.")
	}
}

// leave makes the node answer no new connection, before it tells the farm
// it goes: the planner applies a plan that serves nobody, and leave waits
// for it (bounded, in case the planner is gone).
func (a *Agent) leave() {
	ack := make(chan struct{})
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	select {
	case a.leaveReq <- ack:
	case <-timeout.C:
		a.log.Warn("The planner did not take the leave; leaving anyway.")
		return
	}
	select {
	case <-ack:
	case <-timeout.C:
		a.log.Warn("Applying the leave took too long; leaving anyway.")
	}
}
