// Package delivery is the farm's frame-delivery self-test. The farm works
// only if every node receives every frame sent to the VIP; when one does not
// (the switch learned the virtual MAC and stopped flooding, a NIC filter, a
// wrong VLAN), its share of clients is answered by nobody and no node sees
// an error. So every node counts the new connections to each VIP it sees,
// before its own verdict, and the nodes compare their counts: a node that
// sees markedly fewer than its peers over a window is not getting the
// frames. Pure: the agent feeds it counters gathered over gossip.
package delivery

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Settings tune the test.
type Settings struct {
	// Window is the period counts are compared over.
	Window time.Duration
	// MinConns is how many new connections the peers must have seen in the
	// window before a node is judged (idle farms say nothing).
	MinConns uint64
	// Ratio: a node that saw less than Ratio times its peers' median is
	// flagged.
	Ratio float64
}

// DefaultSettings flag a node that saw under half of what its peers saw over
// 6 s (three gatherings), once the peers saw at least 20 new connections.
var DefaultSettings = Settings{Window: 6 * time.Second, MinConns: 20, Ratio: 0.5}

// point is one node's cumulative counts at one time.
type point struct {
	at   time.Time
	seen map[string]uint64
}

// Tracker keeps each node's recent counters.
type Tracker struct {
	s    Settings
	hist map[string][]point
}

// New returns an empty tracker.
func New(s Settings) *Tracker { return &Tracker{s: s, hist: map[string][]point{}} }

// Add records node's cumulative counts per VIP at time at. A counter that
// went down (the agent restarted) starts the node's history again.
func (t *Tracker) Add(node string, at time.Time, seen map[string]uint64) {
	h := t.hist[node]
	if n := len(h); n > 0 {
		for vip, c := range seen {
			if c < h[n-1].seen[vip] {
				h = nil
				break
			}
		}
	}
	h = append(h, point{at: at, seen: seen})
	// Keep one point older than the window, so a full window is covered.
	for len(h) > 2 && !h[1].at.After(at.Add(-t.s.Window)) {
		h = h[1:]
	}
	t.hist[node] = h
}

// Forget drops a node (it left the farm or is down).
func (t *Tracker) Forget(node string) { delete(t.hist, node) }

// Finding is a node that sees too few of a VIP's new connections.
type Finding struct {
	Node, VIP string
	// Seen is what the node saw over Over; Peers is its peers' median.
	Seen, Peers uint64
	Over        time.Duration
}

// Ratio is Seen over Peers.
func (f Finding) Ratio() float64 { return float64(f.Seen) / float64(f.Peers) }

// Text says what is wrong and what to look at.
func (f Finding) Text() string {
	return fmt.Sprintf("%s saw %d new connections to %s in the last %s, its peers %d (%.0f%%): it is not getting every frame for the VIP. "+
		"Likely causes: the switch learned the virtual MAC and stopped flooding it (a static MAC entry, or the virtual MAC used as a source), "+
		"a NIC or hypervisor filter dropping frames for another MAC, or the node on another VLAN.",
		f.Node, f.Seen, f.VIP, f.Over.Round(time.Second), f.Peers, 100*f.Ratio())
}

// delta is what node saw of vip over the window ending at its last point.
func (t *Tracker) delta(node, vip string, now time.Time) (uint64, time.Duration, bool) {
	h := t.hist[node]
	if len(h) < 2 {
		return 0, 0, false
	}
	last := h[len(h)-1]
	if now.Sub(last.at) > t.s.Window {
		return 0, 0, false // stale
	}
	first := h[0]
	span := last.at.Sub(first.at)
	if span < t.s.Window/2 {
		return 0, 0, false // not enough history yet
	}
	a, okA := first.seen[vip]
	b, okB := last.seen[vip]
	if !okA || !okB || b < a {
		return 0, 0, false // the VIP came or went, or its counter restarted
	}
	return b - a, span, true
}

// judgement is what one node saw of one VIP against its peers' median.
type judgement struct {
	node, vip string
	seen, med uint64
	span      time.Duration
}

// judge compares every node with its peers, for every VIP, over the window.
func (t *Tracker) judge(now time.Time) []judgement {
	vips := map[string]bool{}
	var nodes []string
	for n, h := range t.hist {
		nodes = append(nodes, n)
		for _, p := range h {
			for v := range p.seen {
				vips[v] = true
			}
		}
	}
	sort.Strings(nodes)
	var out []judgement
	for vip := range vips {
		var have []judgement
		for _, n := range nodes {
			if d, span, ok := t.delta(n, vip, now); ok {
				have = append(have, judgement{node: n, vip: vip, seen: d, span: span})
			}
		}
		if len(have) < 2 {
			continue
		}
		for i := range have {
			var peers []uint64
			for j, o := range have {
				if j != i {
					peers = append(peers, o.seen)
				}
			}
			slices.Sort(peers)
			med := peers[len(peers)/2]
			if len(peers)%2 == 0 {
				med = (peers[len(peers)/2-1] + peers[len(peers)/2]) / 2
			}
			have[i].med = med
		}
		out = append(out, have...)
	}
	slices.SortFunc(out, func(a, b judgement) int {
		if a.node != b.node {
			return strings.Compare(a.node, b.node)
		}
		return strings.Compare(a.vip, b.vip)
	})
	return out
}

// Check returns the nodes that see markedly fewer new connections than
// their peers, by node and VIP.
func (t *Tracker) Check(now time.Time) []Finding {
	var out []Finding
	for _, j := range t.judge(now) {
		if j.med >= t.s.MinConns && float64(j.seen) < t.s.Ratio*float64(j.med) {
			out = append(out, Finding{Node: j.node, VIP: j.vip, Seen: j.seen, Peers: j.med, Over: j.span})
		}
	}
	return out
}

// Ratios returns, for each node, the lowest ratio of what it saw to its
// peers' median over the VIPs (1 when it cannot be judged), for metrics.
func (t *Tracker) Ratios(now time.Time) map[string]float64 {
	out := map[string]float64{}
	for n := range t.hist {
		out[n] = 1
	}
	for _, j := range t.judge(now) {
		if j.med < t.s.MinConns {
			continue
		}
		if r := float64(j.seen) / float64(j.med); r < out[j.node] {
			out[j.node] = r
		}
	}
	return out
}
