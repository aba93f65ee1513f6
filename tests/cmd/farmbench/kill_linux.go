package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/tests/lab"
)

// The SIGKILL scenario of issue 9 part 3: under new-connection load from
// every client source, SIGKILL one agent (kernel engine) and check, on the
// wire and in the dead node's conntrack, that the node stopped taking new
// flows before a peer took its buckets: the capture on the client's switch
// port sees no SYN answered twice, and no flow with the dead node's mark
// starts after the kill.

type killOptions struct {
	victim  int
	rate    float64       // new connections per second, in total
	before  time.Duration // load before the kill
	after   time.Duration // load after it
	sources int
}

// killReport is what the scenario saw.
type killReport struct {
	Victim  string  `json:"victim"`
	Engine  string  `json:"engine"`
	Rate    float64 `json:"rate_per_s"`
	Sources int     `json:"sources"`
	Seconds float64 `json:"seconds"`
	// From the load generator.
	ReqPerSec  float64          `json:"req_per_sec"`
	Requests   int64            `json:"requests"`
	Failures   int64            `json:"failures"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	Slow       int64            `json:"slow"`
	ClientSYNs int64            `json:"client_syns"`
	// From the capture on the client's switch port.
	SynAcks       int            `json:"syn_acks"`
	BySource      map[string]int `json:"syn_acks_by_node"`
	Doubles       int            `json:"doubles"`
	DoublesBefore int            `json:"doubles_before_kill"`
	FirstDouble   string         `json:"first_double,omitempty"`
	KernelDropped int            `json:"capture_kernel_dropped"`
	// VictimSynAcksAfter counts the victim's SYN-ACKs read after the kill
	// returned (the process reaped); VictimSynAcksAround those between the
	// last read before it and that point.
	VictimSynAcksAfter  int `json:"victim_syn_acks_after_kill"`
	VictimSynAcksAround int `json:"victim_syn_acks_around_kill"`
	// From the victim's conntrack table (timestamps on): flows with its
	// mark started before the SIGKILL, while the process was dying (from
	// the signal until it was reaped: the kernel removes the owner-flag
	// table when the agent's netlink socket closes on exit), and after it
	// was gone; and flows to the VIP of any mark started after that.
	VictimFlowsBefore int     `json:"victim_flows_before"`
	VictimFlowsDying  int     `json:"victim_flows_while_dying"`
	VictimNewFlows    int     `json:"victim_new_flows_after"`
	VictimNewAny      int     `json:"victim_new_vip_flows_after"`
	NoTimestamp       int     `json:"flows_without_timestamp"`
	KillAt            string  `json:"kill_at"`
	DyingMS           float64 `json:"signal_to_reaped_ms"`
	// LastFlowMS is when the victim's last flow started, after the signal
	// (negative: before it).
	LastFlowMS float64 `json:"last_victim_flow_ms"`
}

// Summary is the report in one line.
func (k *killReport) Summary() string {
	s := fmt.Sprintf("SIGKILL of %s's agent (%s engine) under %.0f new connections/s from %d sources: %d SYN-ACKs for %d client SYNs (%.3f per SYN), %d SYNs answered twice (%d of them before the kill)",
		k.Victim, k.Engine, k.Rate, k.Sources, k.SynAcks, k.ClientSYNs, float64(k.SynAcks)/max(1, float64(k.ClientSYNs)), k.Doubles, k.DoublesBefore)
	s += fmt.Sprintf("; %s sent %d SYN-ACKs after its agent was reaped (%d from the last capture read before the signal until then); its conntrack: %d flows of its mark before the signal, %d while the agent died (%.1f ms from SIGKILL to reaped; last flow %.1f ms after the signal), %d after, %d flows to the VIP of any mark after",
		k.Victim, k.VictimSynAcksAfter, k.VictimSynAcksAround, k.VictimFlowsBefore, k.VictimFlowsDying, k.DyingMS, k.LastFlowMS, k.VictimNewFlows, k.VictimNewAny)
	s += fmt.Sprintf("; requests %d, failed %d, slower than 900 ms %d (SYNs to its buckets before the takeover are retried)", k.Requests, k.Failures, k.Slow)
	if k.KernelDropped > 0 {
		s += fmt.Sprintf("; WARNING: the capture lost %d frames", k.KernelDropped)
	}
	if k.FirstDouble != "" {
		s += "; first double: " + k.FirstDouble
	}
	return s
}

func runKill(b *bench, args []string) (any, error) {
	fs := b.flags("kill [-rate 1000] [-before 3s] [-after 5s] [-victim 2]")
	rate := fs.Float64("rate", 1000, "new connections per second, in total, over 64 sources")
	before := fs.Duration("before", 3*time.Second, "load before the kill")
	after := fs.Duration("after", 5*time.Second, "load after the kill")
	victim := fs.Int("victim", 2, "node whose agent is killed")
	trials := fs.Int("trials", 1, "kills (a fresh farm each)")
	if err := b.parse(fs, args); err != nil {
		return nil, err
	}
	if *victim < 1 || *victim > 3 || *trials < 1 || *trials > 20 {
		return nil, fmt.Errorf("-victim 1..3, -trials 1..20")
	}
	m := readMachine()
	var reps []*killReport
	for t := 0; t < *trials; t++ {
		f, err := b.startFarm(3, "[filter]\nengine = \"kernel\"\n")
		if err != nil {
			return nil, err
		}
		m.setFarm(f.l)
		if _, err := f.steady(f.l.Sources(64), 20*time.Second); err != nil {
			return nil, err
		}
		k, err := killScenario(b, f, killOptions{victim: *victim, rate: *rate, before: *before, after: *after, sources: 64})
		if err != nil {
			return nil, err
		}
		reps = append(reps, k)
		if err := b.closeLab(f.l); err != nil {
			return nil, err
		}
	}
	m.finish()
	out := b.out()
	fmt.Fprintf(out, "\nfarmbench kill\n%s\n\n", m)
	for i, k := range reps {
		fmt.Fprintf(out, "trial %d: %s\n", i+1, k.Summary())
	}
	return map[string]any{"machine": m, "trials": reps}, nil
}

// killScenario runs the scenario on farm f (all agents up, kernel engine).
func killScenario(b *bench, f *farm, o killOptions) (*killReport, error) {
	l := f.l
	ctx, cancel := context.WithTimeout(b.ctx, o.before+o.after+2*time.Minute)
	defer cancel()
	v := l.Node(o.victim)
	k := &killReport{Victim: v.Name, Engine: lab.Engine(), Rate: o.rate, Sources: o.sources}
	for _, e := range []string{"kernel", "nfqueue"} {
		if strings.Contains(f.extra, `engine = "`+e+`"`) {
			k.Engine = e
		}
	}
	// Timestamps are stamped on a flow when it is created: on before the load.
	for i := 1; i <= len(l.Nodes); i++ {
		if err := sh(ctx, l, l.Node(i).NS, "sysctl -qw net.netfilter.nf_conntrack_timestamp=1"); err != nil {
			return nil, err
		}
	}
	if err := f.waitUp(len(l.Nodes), 30*time.Second); err != nil {
		return nil, err
	}
	capt, err := l.StartCapture(ctx)
	if err != nil {
		return nil, err
	}
	defer capt.Stop()
	type loadOut struct {
		res *loadResult
		err error
	}
	done := make(chan loadOut, 1)
	dur := o.before + o.after
	go func() {
		res, err := runLoadProc(ctx, l.Client.NS, netip.AddrPortFrom(l.VIP4, 80), l.ClientAddrs4[:o.sources], 1, modeClose, dur, o.rate)
		done <- loadOut{res, err}
	}()
	if err := b.sleep(o.before); err != nil {
		return nil, err
	}
	if err := capt.Sync(ctx); err != nil {
		return nil, err
	}
	snapA := capt.Report()
	killAt := time.Now()
	if err := f.killAgent(o.victim); err != nil {
		return nil, err
	}
	reaped := time.Now()
	k.DyingMS = ms(reaped.Sub(killAt))
	if err := capt.Sync(ctx); err != nil {
		return nil, err
	}
	snapB := capt.Report()
	b.logf("kill: %s's agent SIGKILLed at %s under load", v.Name, killAt.Format("15:04:05.000"))
	lo := <-done
	if lo.err != nil {
		return nil, lo.err
	}
	final, err := capt.Stop()
	if err != nil {
		return nil, err
	}
	res := lo.res
	k.Seconds = res.Seconds
	k.ReqPerSec = float64(res.Requests) / res.Seconds
	k.Requests, k.Failures, k.Errors, k.Slow = res.Requests, res.Failures, res.Errors, res.Slow
	k.ClientSYNs = res.Dials
	k.SynAcks, k.BySource, k.Doubles, k.KernelDropped = final.SynAcks, final.BySource, len(final.Doubles), final.KernelDropped
	if len(final.Doubles) > 0 {
		k.FirstDouble = final.Doubles[0].String()
	}
	k.DoublesBefore = len(snapA.Doubles)
	k.VictimSynAcksAround = snapB.BySource[v.Name] - snapA.BySource[v.Name]
	k.VictimSynAcksAfter = final.BySource[v.Name] - snapB.BySource[v.Name]
	k.KillAt = killAt.Format(time.RFC3339Nano)

	flows, err := dumpConntrack(v.NS)
	if err != nil {
		return nil, err
	}
	mark := filter.Mark(uint8(o.victim))
	var last time.Time
	for _, fl := range flows {
		if fl.TupleOrig.IP.DestinationAddress != l.VIP4 {
			continue
		}
		start := fl.Timestamp.Start
		if start.IsZero() {
			k.NoTimestamp++
			continue
		}
		if fl.Mark == mark {
			if start.After(last) {
				last = start
			}
			switch {
			case start.After(reaped):
				k.VictimNewFlows++
			case start.After(killAt):
				k.VictimFlowsDying++
			default:
				k.VictimFlowsBefore++
			}
		}
		if start.After(reaped) {
			k.VictimNewAny++
		}
	}
	if !last.IsZero() {
		k.LastFlowMS = ms(last.Sub(killAt))
	}
	b.logf("kill: %s", k.Summary())
	return k, nil
}

// dumpConntrack lists every conntrack entry of namespace ns.
func dumpConntrack(ns string) ([]conntrack.Flow, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(h)})
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink in %s: %w", ns, err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("dump conntrack in %s: %w", ns, err)
	}
	return flows, nil
}
