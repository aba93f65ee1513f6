// Package chaos is the farm's soak test: four agents in the lab under
// continuous load while a seeded schedule applies faults one after the
// other, each checked against the farm's invariants once it heals (see
// chaos_linux_test.go). This file holds the pure part: the schedule, a
// function of the seed alone, so a failing seed replays the same faults.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is one kind of fault.
type Kind string

// The fault kinds. Planned ones are operator actions, which must fail no
// request; the others are crashes, after which every client must be served
// again quickly.
const (
	KillAgent  Kind = "kill-agent"  // SIGKILL the agent, restart it after Hold
	KillNginx  Kind = "kill-nginx"  // SIGKILL nginx; the agent's checker restarts it
	CutLink    Kind = "cut-link"    // the node's switch port down for Hold
	Split1v3   Kind = "split-1|3"   // one node's traffic to its peers dropped for Hold
	Split2v2   Kind = "split-2|2"   // two against two; the pair cut from the witness stops
	Stall      Kind = "stall"       // SIGSTOP the agent for Hold, then SIGCONT
	Drain      Kind = "drain-start" // farm drain, wait until stopped, farm start
	Weight     Kind = "weight"      // weight changed by SIGHUP, restored after Hold
	LeaveJoin  Kind = "leave-join"  // agent stopped gracefully (leaves), started after Hold (joins)
	SteadyKind Kind = "steady"      // not a fault: the quiet time between faults
)

// Kinds lists every fault kind in a fixed order (the report's rows).
var Kinds = []Kind{KillAgent, KillNginx, CutLink, Split1v3, Split2v2, Stall, Drain, Weight, LeaveJoin}

// Planned reports whether k is an operator's planned change.
func (k Kind) Planned() bool { return k == Drain || k == Weight || k == LeaveJoin }

// Step is one fault of the schedule.
type Step struct {
	N      int           // position in the schedule, from 1
	Kind   Kind          // what
	Nodes  []int         // the node(s) it hits (1-based); Split2v2: the pair that loses
	Via    int           // the node whose API runs a drain or start
	Hold   time.Duration // how long the fault lasts before it is healed
	Weight int           // the new weight (Weight only)
	Gap    time.Duration // quiet time after the farm has agreed again
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", s.N, s.Kind)
	for i, n := range s.Nodes {
		sep := " "
		if i > 0 {
			sep = "+"
		}
		fmt.Fprintf(&b, "%sweb%d", sep, n)
	}
	if s.Kind == Weight {
		fmt.Fprintf(&b, " weight=%d", s.Weight)
	}
	if s.Kind == Drain {
		fmt.Fprintf(&b, " via=web%d", s.Via)
	}
	fmt.Fprintf(&b, " hold=%s gap=%s", s.Hold, s.Gap)
	return b.String()
}

// Estimate is how long a step takes in the lab, roughly: the hold, the
// healing (a restarted agent joins, a split merges) and the gap. It sizes
// the schedule to a duration; the run itself stops at its deadline.
func (s Step) Estimate() time.Duration {
	heal := 3 * time.Second
	switch s.Kind {
	case KillAgent, LeaveJoin:
		heal = 5 * time.Second
	case Split1v3, Split2v2, CutLink:
		heal = 7 * time.Second
	case KillNginx:
		heal = 4 * time.Second
	case Drain:
		heal = 2 * time.Second
	}
	return s.Hold + heal + s.Gap
}

// Schedule returns the faults for a soak of about d on a farm of `nodes`
// nodes: rounds of every kind in a seeded random order (so a run long
// enough for one round sees every kind), each step with seeded targets,
// hold and gap. It depends on its arguments alone.
func Schedule(seed uint64, d time.Duration, nodes int) []Step {
	return ScheduleOf(seed, d, nodes, Kinds)
}

// ScheduleOf is Schedule over a subset of the kinds (rounds of those only),
// to replay one kind of fault in isolation.
func ScheduleOf(seed uint64, d time.Duration, nodes int, kinds []Kind) []Step {
	if len(kinds) == 0 {
		return nil
	}
	if nodes < 4 {
		panic("chaos.Schedule needs at least 4 nodes (2|2 splits)")
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond }
	var out []Step
	var total time.Duration
	for total < d {
		round := append([]Kind(nil), kinds...)
		r.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		for _, k := range round {
			if total >= d {
				break
			}
			perm := r.Perm(nodes)
			s := Step{N: len(out) + 1, Kind: k, Nodes: []int{perm[0] + 1}, Gap: ms(1500, 3000)}
			switch k {
			case KillAgent:
				s.Hold = ms(300, 2000)
			case KillNginx:
				s.Hold = 0 // the agent heals it
			case CutLink:
				s.Hold = ms(1500, 4000)
			case Split1v3:
				s.Hold = ms(3000, 6000)
			case Split2v2:
				s.Nodes = []int{min(perm[0], perm[1]) + 1, max(perm[0], perm[1]) + 1}
				s.Hold = ms(3000, 6000)
			case Stall:
				s.Hold = ms(200, 700)
			case Drain:
				s.Via = perm[1] + 1
				s.Hold = ms(2000, 4000) // draining, then started again
			case Weight:
				s.Weight = []int{50, 150, 200}[r.IntN(3)]
				s.Hold = ms(2000, 4000)
			case LeaveJoin:
				s.Hold = ms(1500, 4000)
			}
			out = append(out, s)
			total += s.Estimate()
		}
	}
	return out
}

// ParseKinds reads a comma-separated list of kind names ("" is every kind).
func ParseKinds(s string) ([]Kind, error) {
	if strings.TrimSpace(s) == "" {
		return Kinds, nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		found := false
		for _, known := range Kinds {
			found = found || k == known
		}
		if !found {
			return nil, fmt.Errorf("unknown fault kind %q (known: %v)", k, Kinds)
		}
		out = append(out, k)
	}
	return out, nil
}
