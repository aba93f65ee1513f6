package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/delivery"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/view"
)

// flowCountEvery is how often the gathering recounts this node's flows.
const flowCountEvery = 15 * time.Second

// detailEvery is how often a node gathers every node's detail (flows,
// checkers, frames seen) over gossip: the console's freshness and the
// frame-delivery self-test's sampling period.
const detailEvery = 2 * time.Second

// seer is an engine that counts the new flows it sees per VIP, before its
// verdict (the nfqueue engine does; see the frame-delivery self-test).
type seer interface {
	Seen() []uint64
}

// info is what a node tells the others about itself, compact because an
// answer must fit one datagram (member.InfoLimit).
type info struct {
	Flows    int               `json:"f"`
	Checkers []infoChecker     `json:"c,omitempty"`
	Seen     map[string]uint64 `json:"s,omitempty"`
	Phase    string            `json:"p,omitempty"`
	Serving  bool              `json:"v"`
	Why      string            `json:"w,omitempty"`
	At       int64             `json:"t"` // unix ms
}

type infoChecker struct {
	Name  string `json:"n"`
	Type  string `json:"y"`
	State string `json:"s"`
	Err   string `json:"e,omitempty"`
	At    int64  `json:"t"`
}

// stillNoFlows reports whether this node is known to hold no flow without
// a count: the last count found none and no new flow reached any VIP
// since (the engine's counters, seen, match the ones of that count; every
// flow of this node started as one of them). Even an empty conntrack dump
// walks the kernel's whole table (262,144 buckets here: about 12 ms), a
// twentieth of an idle agent's CPU.
func (d *details) stillNoFlows(seen []uint64) bool {
	return seen != nil && d.flows.Load() == 0 && slices.Equal(seen, d.flowsSeen)
}

// farmDetail is the latest gathering.
type farmDetail struct {
	nodes    map[string]*console.NodeDetail
	warnings []console.Warning
}

// details gathers and keeps every node's detail; the detail stage runs it.
type details struct {
	localInfo atomic.Pointer[[]byte]
	latest    atomic.Pointer[farmDetail]

	mu      sync.Mutex // guards tracker, flagged and lastAt (the detail stage and tests)
	tracker *delivery.Tracker
	flagged map[string]delivery.Finding
	lastAt  map[string]int64 // each node's last info time, to skip repeats
	flows   atomic.Int64     // this node's last flow count, -1 unknown
	flowsAt time.Time        // when it was counted (the detail stage only)
	// flowsSeen is the engine's new-flow counters at that count (nil: not
	// known); the detail stage only.
	flowsSeen []uint64
	ratios    atomic.Pointer[map[string]float64]
	gathered  atomic.Int64 // gatherings done, for tests
}

// encodeInfo builds this node's info and keeps it for OnInfo.
func (a *Agent) encodeInfo(ctx context.Context) {
	in := info{Flows: -1, At: time.Now().UnixMilli()}
	var seen []uint64
	if s, ok := a.engine.(seer); ok {
		seen = s.Seen()
	}
	// Counting dumps this node's conntrack entries, which costs CPU in
	// proportion to them (measured: a 2 s count was the agent's largest cost
	// under short connections), so the console's figure is refreshed only
	// every flowCountEvery; a drain counts on its own.
	if now := time.Now(); now.Sub(a.details.flowsAt) >= flowCountEvery {
		if !a.details.stillNoFlows(seen) {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			n, err := a.flows(cctx)
			cancel()
			if err != nil {
				n = -1
			}
			a.details.flows.Store(int64(n))
		}
		a.details.flowsAt = now
		a.details.flowsSeen = seen
	}
	in.Flows = int(a.details.flows.Load())
	st := a.monitor.Status()
	in.Phase = st.Phase.String()
	for _, c := range st.Checks {
		ic := infoChecker{Name: c.Name, Type: c.Type, State: c.State.String(), Err: c.LastError, At: c.LastCheck.Unix()}
		if len(ic.Err) > 60 {
			ic.Err = ic.Err[:57] + "..."
		}
		in.Checkers = append(in.Checkers, ic)
	}
	if seen != nil {
		in.Seen = map[string]uint64{}
		for i, n := range seen {
			if i < len(a.cfg.VIPs()) {
				in.Seen[a.cfg.VIPs()[i].Addr.String()] = n
			}
		}
	}
	if p := a.plan.Load(); p != nil {
		in.Serving, in.Why = p.Serving, p.Why
	}
	b, _ := json.Marshal(in)
	for len(b) > 1000 && len(in.Checkers) > 0 {
		// Too many checkers for one datagram: drop their errors, then the last ones.
		trimmed := false
		for i := range in.Checkers {
			if in.Checkers[i].Err != "" {
				in.Checkers[i].Err, trimmed = "", true
			}
		}
		if !trimmed {
			in.Checkers = in.Checkers[:len(in.Checkers)-1]
		}
		b, _ = json.Marshal(in)
	}
	a.details.localInfo.Store(&b)
}

// onInfo answers the others' info queries (member.Config.OnInfo).
func (a *Agent) onInfo() []byte {
	if b := a.details.localInfo.Load(); b != nil {
		return *b
	}
	return nil
}

// detailLoop gathers the farm's detail every detailEvery until ctx ends.
func (a *Agent) detailLoop(ctx context.Context) error {
	tick := time.NewTicker(detailEvery)
	defer tick.Stop()
	for {
		a.gather(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// gather does one round: this node's info, the others' answers, and the
// frame-delivery check over them.
func (a *Agent) gather(ctx context.Context) {
	a.encodeInfo(ctx)
	answers, err := a.members.Info(ctx, time.Second)
	if err != nil && ctx.Err() == nil {
		a.log.Debug("Gathering the farm's detail failed.", "err", err)
	}
	now := time.Now()
	fd := &farmDetail{nodes: map[string]*console.NodeDetail{}}
	v := a.members.View()
	alive := map[string]bool{}
	for _, n := range v.Nodes {
		alive[n.Name] = n.Alive
	}
	a.details.mu.Lock()
	defer a.details.mu.Unlock()
	for name, b := range answers {
		var in info
		if len(b) == 0 || json.Unmarshal(b, &in) != nil {
			continue // an old or foreign peer: show nothing rather than guess
		}
		fd.nodes[name] = in.detail()
		// Only a fresh answer is a sample: a node whose own gathering
		// stalls keeps answering its last info, whose unchanged counters
		// would read as "saw nothing since".
		if in.Seen != nil && in.At != a.details.lastAt[name] {
			a.details.lastAt[name] = in.At
			a.details.tracker.Add(name, now, in.Seen)
		}
	}
	for _, n := range v.Nodes {
		if !n.Alive {
			a.details.tracker.Forget(n.Name)
		}
	}
	found := map[string]delivery.Finding{}
	for _, f := range a.details.tracker.Check(now) {
		found[f.Node+" "+f.VIP] = f
		fd.warnings = append(fd.warnings, console.Warning{Node: f.Node, Kind: "delivery", Text: f.Text()})
		if _, old := a.details.flagged[f.Node+" "+f.VIP]; !old {
			a.log.Warn("Frame delivery: a node sees too few new connections.", "subject", f.Node, "vip", f.VIP,
				"seen", f.Seen, "peers", f.Peers, "over", f.Over.Round(time.Second))
			a.events.Add(events.Event{Node: f.Node, What: "delivery.low", Why: f.Text(),
				Detail: map[string]string{"vip": f.VIP, "seen": fmt.Sprint(f.Seen), "peers": fmt.Sprint(f.Peers)}})
		}
	}
	for k, f := range a.details.flagged {
		if _, still := found[k]; !still && alive[f.Node] {
			a.events.Add(events.Event{Node: f.Node, What: "delivery.ok", Why: "sees its share of new connections to " + f.VIP + " again"})
		}
	}
	a.details.flagged = found
	r := a.details.tracker.Ratios(now)
	a.details.ratios.Store(&r)
	a.details.latest.Store(fd)
	a.details.gathered.Add(1)
}

// detail converts an info answer for the console.
func (in info) detail() *console.NodeDetail {
	d := &console.NodeDetail{Flows: in.Flows, Seen: in.Seen, Phase: in.Phase, Serving: in.Serving, Why: in.Why, At: unixMilli(in.At)}
	for _, c := range in.Checkers {
		d.Checkers = append(d.Checkers, console.CheckerStatus{Name: c.Name, Type: c.Type, State: c.State, LastError: c.Err, LastCheck: unixTime(c.At)})
	}
	return d
}

// unixTime reads a peer's timestamp; one that JSON cannot carry (before year
// 0 or after 9999: a broken or hostile peer) reads as unknown.
func unixTime(sec int64) time.Time {
	const maxUnix = 253402300799 // 9999-12-31T23:59:59Z
	if sec <= 0 || sec > maxUnix {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// unixMilli is unixTime for a timestamp in milliseconds (the info's own time,
// fine enough to tell two gatherings apart).
func unixMilli(ms int64) time.Time {
	if ms <= 0 || ms/1000 > 253402300799 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// nodeStatus builds the console's view of one node.
func nodeStatus(n view.Node, v view.View, self string, fd *farmDetail) console.NodeStatus {
	b := 0
	if n.ID != 0 && n.Alive {
		b = v.Shares[n.ID]
	}
	ns := console.NodeStatus{
		Name: n.Name, ID: int(n.ID), State: string(n.State), Buckets: b,
		Share: float64(b) / 4096, Weight: int(n.Weight), Addr: n.Addr,
		Self: n.Name == self, Suspect: n.Suspect,
	}
	if fd != nil && n.Alive {
		ns.Detail = fd.nodes[n.Name]
	}
	return ns
}
