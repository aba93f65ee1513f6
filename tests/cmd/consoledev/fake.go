package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// drainFor is how long a fake node stays draining before it stops.
const drainFor = 4 * time.Second

// fakeFarm is a console.Farm over made-up nodes: the owner table and the
// what-ifs are the real computations, the rest is invented.
type fakeFarm struct {
	mu       sync.Mutex
	nodes    []view.Node
	flows    map[string]int
	drainEnd map[string]time.Time
	failing  map[string]bool
	warn     bool
	ev       *events.Ring
	start    time.Time
}

func newFakeFarm(n int, warn bool) *fakeFarm {
	f := &fakeFarm{flows: map[string]int{}, drainEnd: map[string]time.Time{}, failing: map[string]bool{},
		warn: warn, ev: events.NewRing(0, nil), start: time.Now()}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("web%d", i)
		f.nodes = append(f.nodes, view.Node{Name: name, ID: uint8(i), Weight: 100, State: view.StateUp,
			Addr: fmt.Sprintf("10.213.0.%d:7946", 10+i), Alive: true})
		f.flows[name] = 20 + rand.IntN(200)
	}
	past := time.Now().Add(-5 * time.Minute)
	for i, nd := range f.nodes {
		f.ev.Add(events.Event{Time: past.Add(time.Duration(i) * time.Second), Node: nd.Name, What: "node.up", Why: "joined the farm"})
		f.ev.Add(events.Event{Time: past.Add(time.Duration(i)*time.Second + 500*time.Millisecond), Node: nd.Name,
			What: "checker.passing", Why: "http http://127.0.0.1/ answered 200", Detail: map[string]string{"checker": "web"}})
	}
	if n >= 2 {
		last := f.nodes[n-1].Name
		f.ev.Add(events.Event{Time: past.Add(2 * time.Minute), Node: last, What: "checker.failing",
			Why: "http http://127.0.0.1/: connection refused", Detail: map[string]string{"checker": "web", "fall": "2"}})
		f.ev.Add(events.Event{Time: past.Add(2*time.Minute + time.Second), Node: last, What: "recovery.restart",
			Why: "checker web failed: running the stop and start scripts", Detail: map[string]string{"exit": "0"}})
		f.ev.Add(events.Event{Time: past.Add(2*time.Minute + 4*time.Second), Node: last, What: "checker.passing",
			Why: "http http://127.0.0.1/ answered 200", Detail: map[string]string{"checker": "web"}})
		if warn {
			f.ev.Add(events.Event{Time: past.Add(3 * time.Minute), Node: last, What: "delivery.low",
				Why: "saw 41% of the new connections its peers saw over 30 s", Detail: map[string]string{"vip": "10.213.0.100"}})
		}
	}
	return f
}

// mix puts the nodes after the first in every state a node can be in.
func (f *fakeFarm) mix() {
	f.mu.Lock()
	defer f.mu.Unlock()
	set := func(i int, fn func(n *view.Node)) {
		if i < len(f.nodes) {
			fn(&f.nodes[i])
		}
	}
	set(1, func(n *view.Node) { n.State = view.StateDraining; f.drainEnd[n.Name] = time.Now().Add(time.Hour) })
	set(2, func(n *view.Node) { n.State = view.StateFailed; f.failing[n.Name] = true })
	set(3, func(n *view.Node) { n.State = view.StateStopped; f.flows[n.Name] = 0 })
	set(4, func(n *view.Node) { n.Alive = false })
	set(5, func(n *view.Node) { n.Suspect = true; n.Weight = 200 })
	set(6, func(n *view.Node) { n.Weight = 0 })
}

// run moves the fake farm along: draining nodes stop, flows wander, and with
// busy a node fails and recovers now and then.
func (f *fakeFarm) run(ctx context.Context, busy bool) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	tick := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tick++
		f.mu.Lock()
		now := time.Now()
		for i := range f.nodes {
			n := &f.nodes[i]
			if end, ok := f.drainEnd[n.Name]; ok && n.State == view.StateDraining {
				left := time.Until(end)
				f.flows[n.Name] = int(float64(f.flows[n.Name]) * 0.7)
				if left <= 0 {
					n.State = view.StateStopped
					f.flows[n.Name] = 0
					delete(f.drainEnd, n.Name)
					f.add(events.Event{Node: n.Name, What: "drain.done", Why: "no flows left"})
					f.add(events.Event{Node: n.Name, What: "node.stopped", Why: "drained"})
				}
			}
			if n.State == view.StateUp && n.Alive {
				f.flows[n.Name] = max(0, f.flows[n.Name]+rand.IntN(21)-10)
			}
		}
		if busy && tick%16 == 0 {
			f.busyStep(now, tick/16)
		}
		f.mu.Unlock()
	}
}

// busyStep makes one unprompted change, in a cycle.
func (f *fakeFarm) busyStep(now time.Time, step int) {
	if len(f.nodes) < 2 {
		return
	}
	n := &f.nodes[1+step%(len(f.nodes)-1)]
	switch step % 6 {
	case 0:
		n.State, f.failing[n.Name] = view.StateFailed, true
		f.add(events.Event{Node: n.Name, What: "checker.failing", Why: "http http://127.0.0.1/: 502 Bad Gateway", Detail: map[string]string{"checker": "web"}})
		f.add(events.Event{Node: n.Name, What: "node.failed", Why: "its application is down"})
	case 1:
		n.State, f.failing[n.Name] = view.StateUp, false
		f.add(events.Event{Node: n.Name, What: "checker.passing", Why: "http http://127.0.0.1/ answered 200", Detail: map[string]string{"checker": "web"}})
		f.add(events.Event{Node: n.Name, What: "node.up", Why: "its application is back"})
	case 2:
		n.Suspect = true
		f.add(events.Event{Node: n.Name, What: "node.suspect", Why: "missed gossip probes"})
	case 3:
		n.Suspect = false
		f.add(events.Event{Node: n.Name, What: "node.alive", Why: "answers gossip probes again"})
	case 4:
		n.Alive = false
		f.add(events.Event{Node: n.Name, What: "node.down", Why: "unreachable: failed gossip probes"})
	case 5:
		n.Alive = true
		f.add(events.Event{Node: n.Name, What: "node.up", Why: "reachable again"})
	}
	_ = now
}

func (f *fakeFarm) add(e events.Event) { f.ev.Add(e) }

func (f *fakeFarm) view() view.View {
	return view.Compute(slices.Clone(f.nodes), true)
}

func tableVersion(t *table.Table) string {
	h := sha256.Sum256(t[:])
	return hex.EncodeToString(h[:8])
}

// Status implements console.Farm.
func (f *fakeFarm) Status(ctx context.Context, detail bool) console.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.view()
	st := console.Status{Buckets: table.Buckets, Self: f.nodes[0].Name, Quorum: v.Quorum, Known: v.Known,
		Healthy: v.Healthy, TableVersion: tableVersion(v.Table), Time: time.Now(),
		Witness: &console.WitnessStatus{Address: "10.213.0.1", Reachable: true}}
	now := time.Now()
	for _, n := range v.Nodes {
		b := v.Shares[n.ID]
		state := string(n.State)
		if !n.Alive {
			state = string(view.StateDown)
		}
		ns := console.NodeStatus{Name: n.Name, ID: int(n.ID), State: state, Buckets: b,
			Share: float64(b) / table.Buckets, Weight: int(n.Weight), Addr: n.Addr,
			Self: n.Name == st.Self, Suspect: n.Suspect}
		if detail && n.Alive {
			serving := n.State == view.StateUp && v.Quorum
			why := ""
			switch {
			case !v.Quorum:
				why = "no-quorum"
			case n.State == view.StateDraining:
				why = "draining"
			case n.State == view.StateStopped:
				why = "stopped"
			case n.State == view.StateFailed:
				why = "application down"
			}
			cs := console.CheckerStatus{Name: "web", Type: "http", State: "passing", LastCheck: now.Add(-time.Duration(rand.IntN(900)) * time.Millisecond)}
			if f.failing[n.Name] {
				cs.State, cs.LastError = "failing", "GET http://127.0.0.1/: 502 Bad Gateway"
			}
			proc := console.CheckerStatus{Name: "nginx", Type: "process", State: "passing", LastCheck: now.Add(-1500 * time.Millisecond)}
			flows := f.flows[n.Name]
			if n.Name == "web2" {
				flows = -1 // unknown: this node's conntrack could not be read
			}
			phase := "running"
			if f.failing[n.Name] {
				phase = "recovering"
			}
			ns.Detail = &console.NodeDetail{Flows: flows, Checkers: []console.CheckerStatus{cs, proc}, Phase: phase,
				Serving: serving, Why: why, At: now, Seen: map[string]uint64{
					"10.213.0.100":  uint64(1000 + int(now.Sub(f.start).Seconds())*7),
					"fd00:213::100": uint64(800 + int(now.Sub(f.start).Seconds())*5)}}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if f.warn && len(f.nodes) >= 2 {
		last := f.nodes[len(f.nodes)-1].Name
		st.Warnings = append(st.Warnings, console.Warning{Node: last, Kind: "delivery",
			Text: last + " saw 41% of the new connections to 10.213.0.100 that its peers saw over the last 30 s: the switch may have learned the virtual MAC (flooding stopped), or a NIC/VLAN filter drops the VIP's frames."})
	}
	return st
}

// Table implements console.Farm.
func (f *fakeFarm) Table() console.Table {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.view()
	names := map[string]string{}
	for _, n := range f.nodes {
		names[strconv.Itoa(int(n.ID))] = n.Name
	}
	return console.Table{Buckets: table.Buckets, Version: tableVersion(v.Table), Owners: slices.Clone(v.Table[:]), Names: names}
}

// Act implements console.Farm.
func (f *fakeFarm) Act(ctx context.Context, node, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.nodes, func(n view.Node) bool { return n.Name == node })
	if i < 0 {
		return fmt.Errorf("%w %q", console.ErrNoSuchNode, node)
	}
	n := &f.nodes[i]
	if !n.Alive {
		return fmt.Errorf("%s is unreachable", node)
	}
	f.add(events.Event{Node: node, What: "operator." + action, Why: "requested through the API"})
	switch action {
	case "stop":
		n.State = view.StateStopped
		delete(f.drainEnd, node)
		f.flows[node] = 0
		f.add(events.Event{Node: node, What: "node.stopped", Why: "stopped by the operator"})
	case "drain":
		if n.State == view.StateUp {
			n.State = view.StateDraining
			f.drainEnd[node] = time.Now().Add(drainFor)
			f.add(events.Event{Node: node, What: "node.draining", Why: "takes no new connection; waits for its flows to end"})
		}
	case "start":
		n.State = view.StateUp
		delete(f.drainEnd, node)
		f.failing[node] = false
		f.flows[node] = 5
		f.add(events.Event{Node: node, What: "node.up", Why: "started by the operator"})
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	return nil
}

// Events implements console.Farm.
func (f *fakeFarm) Events(q console.EventQuery) []events.Event {
	evs := f.ev.ListAfter(q.After, 0)
	out := evs[:0]
	for _, e := range evs {
		if q.Node != "" && e.Node != q.Node {
			continue
		}
		if q.Kind != "" && !strings.HasPrefix(e.What, q.Kind) {
			continue
		}
		out = append(out, e)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out
}

// WhatIf implements console.Farm.
func (f *fakeFarm) WhatIf(c view.Change) (view.WhatIf, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return view.Plan(slices.Clone(f.nodes), c)
}
