package plan

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

func TestSwitchAnswers(t *testing.T) {
	var sw Switch
	sw.Until, sw.From = 100, 105
	sw.Lose.Add(1)
	sw.Gain.Add(2)
	for _, c := range []struct {
		b     uint16
		owned bool
		now   int64
		want  bool
	}{
		{1, true, 99, true}, {1, true, 100, false}, {0, true, 1000, true}, {0, false, 1000, false},
		{2, false, 104, false}, {2, false, 105, true}, {3, false, 105, false},
	} {
		if got := sw.Answers(c.b, c.owned, c.now); got != c.want {
			t.Errorf("Answers(%d, %v, %d) = %v, want %v", c.b, c.owned, c.now, got, c.want)
		}
	}
	if !(*Switch)(nil).Answers(7, true, 0) || (*Switch)(nil).Answers(7, false, 0) {
		t.Error("a nil switch does not answer what the table owns")
	}
}

// simNode is one node of the switch simulation: the plans it applied and
// when.
type simNode struct {
	at    []int64
	plans []Plan
}

func (n *simNode) apply(at time.Time, p Plan) {
	n.at = append(n.at, at.UnixNano())
	n.plans = append(n.plans, p)
}

// answers reports whether the node answers a new flow of bucket b whose
// first packet comes at t: the engines follow the latest plan applied and
// its Switch at packet time.
func (n *simNode) answers(self uint8, b uint16, t int64) bool {
	i, found := slices.BinarySearch(n.at, t)
	if !found {
		i--
	}
	if i < 0 {
		return false
	}
	p := n.plans[i]
	if p.Table == nil {
		return false
	}
	return p.Switch.Answers(b, p.Table[b] == self, t)
}

// TestSwitchNeverAnswersTwice simulates four nodes' planners through every
// kind of planned change, announced SwitchLead ahead, with each node
// hearing of it at its own time (the others within the handoff delay of
// each other, before or after the switch time; before it when the
// announcer gains buckets) and its timer firing up to 80 ms late:
// no bucket is ever answered by two nodes. When every node hears within
// 100 ms of the announcement, no bucket is answered by nobody for longer
// than the margin.
func TestSwitchNeverAnswersTwice(t *testing.T) {
	const (
		lead    = 500 * time.Millisecond
		handoff = 300 * time.Millisecond
		margin  = 5 * time.Millisecond
	)
	tA := t0.Add(10 * time.Second) // the announcement
	at := tA.Add(lead).UnixNano()
	ann := func(n view.Node) view.Node { n.SwitchAt = at; return n }
	stopped := func(n view.Node) view.Node { return state(n, view.StateStopped) }
	scenarios := []struct {
		name          string
		before, after []view.Node
		announcer     uint8
		// gains: the announcer gains buckets, so the others must hear
		// before the switch time (the lead is what covers them).
		gains bool
	}{
		{"stop", []view.Node{web1, web2, web3, web4}, []view.Node{web1, ann(stopped(web2)), web3, web4}, 2, false},
		{"drain", []view.Node{web1, web2, web3, web4}, []view.Node{ann(state(web1, view.StateDraining)), web2, web3, web4}, 1, false},
		{"start", []view.Node{web1, stopped(web2), web3, web4}, []view.Node{web1, ann(web2), web3, web4}, 2, true},
		{"join", []view.Node{web1, web2, web3}, []view.Node{web1, web2, web3, ann(web4)}, 4, true},
		{"weight up", []view.Node{web1, web2, web3, web4}, []view.Node{web1, web2, ann(weight(web3, 200)), web4}, 3, true},
		{"weight down", []view.Node{web1, web2, web3, web4}, []view.Node{web1, web2, ann(weight(web3, 50)), web4}, 3, false},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sc := range scenarios {
		before, after := farm(sc.before...), farm(sc.after...)
		for trial := range 60 {
			// Hearing times: the announcer at once; the others after a
			// common delay (0 to 900 ms: some after the switch time) plus
			// their own spread, all within the handoff delay of each other.
			base := time.Duration(rng.IntN(10)) * 100 * time.Millisecond
			if trial%3 == 0 {
				base = time.Duration(rng.IntN(40)) * time.Millisecond
			}
			if sc.gains {
				base = min(base, 200*time.Millisecond)
			}
			nodes := make([]simNode, 5)
			heard := make([]time.Time, 5)
			fast := true
			for id := uint8(1); id <= 4; id++ {
				s := Settings{Self: id, HandoffDelay: handoff, ResetWindow: 30 * time.Second, SwitchMargin: margin}
				h := tA.Add(base + time.Duration(rng.IntN(int(handoff/time.Millisecond)-10))*time.Millisecond)
				if id == sc.announcer {
					h = tA
				}
				heard[id] = h
				if h.Sub(tA) > 100*time.Millisecond {
					fast = false
				}
				var p Plan
				if slices.ContainsFunc(sc.before, func(n view.Node) bool { return n.ID == id }) {
					p, _ = Next(p, Input{View: before}, s, t0)
					p, _ = Next(p, Input{View: before}, s, t0.Add(time.Second))
					nodes[id].apply(t0, p)
				}
				now := h
				in := Input{View: after}
				for k := 0; k < 10; k++ {
					next, wake := Next(p, in, s, now)
					nodes[id].apply(now, next)
					p = next
					if wake.IsZero() {
						break
					}
					now = wake.Add(time.Duration(rng.IntN(80)) * time.Millisecond)
				}
			}
			// The answers change only at the nodes' plan and switch times:
			// check at each of them and just before.
			var ts []int64
			for id := 1; id <= 4; id++ {
				for i, p := range nodes[id].plans {
					ts = append(ts, nodes[id].at[i])
					if p.Switch != nil {
						ts = append(ts, p.Switch.Until, p.Switch.From)
					}
				}
			}
			slices.Sort(ts)
			ts = slices.Compact(ts)
			var gapStart [table.Buckets]int64
			for _, tt := range ts {
				for _, t1 := range []int64{tt - 1, tt} {
					if t1 < tA.UnixNano() {
						continue
					}
					for b := range table.Buckets {
						n := 0
						for id := uint8(1); id <= 4; id++ {
							if nodes[id].answers(id, uint16(b), t1) {
								n++
							}
						}
						if n > 1 {
							t.Fatalf("%s, trial %d: bucket %d answered by %d nodes at +%v after the announcement (heard at %v)",
								sc.name, trial, b, n, time.Duration(t1-tA.UnixNano()), heard[1:])
						}
						switch {
						case n == 0 && gapStart[b] == 0:
							gapStart[b] = t1
						case n == 1 && gapStart[b] != 0:
							if gap := time.Duration(t1 - gapStart[b]); fast && gap > margin+time.Nanosecond {
								t.Errorf("%s, trial %d: bucket %d answered by nobody for %v (heard at %v)",
									sc.name, trial, b, gap, heard[1:])
							}
							gapStart[b] = 0
						}
					}
				}
			}
		}
	}
}
