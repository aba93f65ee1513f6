package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " | ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type failoverReport struct {
	Machine  machine            `json:"machine"`
	Mode     string             `json:"mode"`
	Victim   string             `json:"victim"`
	Trials   int                `json:"trials"`
	Rate     float64            `json:"rate_per_s"`
	Sources  int                `json:"sources"`
	Timeout  string             `json:"request_timeout"`
	Settings []*failoverSetting `json:"settings"`
}

// failoverSetting is one agent config (extra TOML) and its trials.
type failoverSetting struct {
	Label  string          `json:"label"`
	Extra  string          `json:"extra_toml"`
	Trials []failoverTrial `json:"trials"`
	Error  string          `json:"error,omitempty"`

	RecoveredP50  float64 `json:"recovered_ms_p50"`
	RecoveredMax  float64 `json:"recovered_ms_max"`
	LastFailedP50 float64 `json:"last_failed_ms_p50"`
	LastFailedMax float64 `json:"last_failed_ms_max"`
	DetectedP50   float64 `json:"detected_ms_p50"`
	DetectedMax   float64 `json:"detected_ms_max"`
	Collateral    int     `json:"collateral_failures"`
	PreFailures   int     `json:"pre_kill_failures"`
	RejoinFail    int     `json:"rejoin_failures"`
	RejoinReqs    int     `json:"rejoin_requests"`
	Unrecovered   int     `json:"unrecovered_trials"`
}

// failoverTrial is one death of the victim and its return.
type failoverTrial struct {
	N int `json:"trial"`
	outage
	RecoveredMS  float64 `json:"recovered_ms"`
	LastFailedMS float64 `json:"last_failed_ms"`
	// DetectedMS is when the slowest survivor's status first showed the
	// victim not up (polled every 50 ms); per survivor in Detected.
	DetectedMS float64            `json:"detected_ms"`
	Detected   map[string]float64 `json:"detected_ms_by_node"`
	// Pre*: the second of load before the kill (must not fail).
	PreRequests int            `json:"pre_requests"`
	PreFailures int            `json:"pre_failures"`
	PreErrors   map[string]int `json:"pre_errors,omitempty"`
	// Rejoin*: from the restart (agent or link) until 2 s after the farm
	// converged again: a planned join should fail nothing.
	RejoinRequests int            `json:"rejoin_requests"`
	RejoinFailures int            `json:"rejoin_failures"`
	RejoinErrors   map[string]int `json:"rejoin_errors,omitempty"`
	RejoinSpan     span           `json:"rejoin_failed"`
	ConvergeMS     float64        `json:"rejoin_converge_ms"`
	// AgentExited (link mode) is the victim agent's last log line when it
	// exited on its own while its link was down; it is started again.
	AgentExited string `json:"agent_exited,omitempty"`
	// V6After is one request per IPv6 source after the rejoin: "64/64 ok".
	V6After string `json:"v6_after_rejoin"`
	// Captures (-capture): SYN-ACKs seen by the client's switch port from
	// the kill to the restart, and from the restart to the end; a double is
	// a SYN answered by two nodes.
	OutageCapture *captureSum `json:"outage_capture,omitempty"`
	RejoinCapture *captureSum `json:"rejoin_capture,omitempty"`
}

// captureSum is what a lab capture saw.
type captureSum struct {
	SynAcks       int            `json:"syn_acks"`
	BySource      map[string]int `json:"by_source"`
	Doubles       int            `json:"doubles"`
	FirstDouble   string         `json:"first_double,omitempty"`
	KernelDropped int            `json:"kernel_dropped"`
}

func (c *captureSum) String() string {
	if c == nil {
		return "-"
	}
	s := fmt.Sprintf("%d doubles/%d", c.Doubles, c.SynAcks)
	if c.KernelDropped > 0 {
		s += fmt.Sprintf(" (capture lost %d)", c.KernelDropped)
	}
	return s
}

// capture starts a lab capture when enabled; stop returns its summary.
func (fo *failoverBench) capture(f *farm) (stop func() (*captureSum, error), err error) {
	if !fo.captures {
		return func() (*captureSum, error) { return nil, nil }, nil
	}
	ctx, cancel := context.WithTimeout(fo.b.ctx, 10*time.Second)
	defer cancel()
	c, err := f.l.StartCapture(ctx)
	if err != nil {
		return nil, err
	}
	return func() (*captureSum, error) {
		rep, err := c.Stop()
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		sum := &captureSum{SynAcks: rep.SynAcks, BySource: rep.BySource, Doubles: len(rep.Doubles), KernelDropped: rep.KernelDropped}
		if len(rep.Doubles) > 0 {
			sum.FirstDouble = fmt.Sprintf("%+v", rep.Doubles[0])
		}
		return sum, nil
	}, nil
}

func runFailover(b *bench, args []string) (any, error) {
	fs := b.flags("failover [-trials 10] [-mode kill|link] [-extra TOML]... [-rate 200] [-sources 64] [-timeout 300ms]")
	trials := fs.Int("trials", 10, "kills per setting")
	mode := fs.String("mode", "kill", "how the victim dies: kill (SIGKILL its agent) or link (its eth0 down)")
	var extras stringList
	fs.Var(&extras, "extra", "agent config TOML merged over the lab's defaults, one setting to compare; repeat it to compare several (\"\" = defaults). Default: the defaults and "+strings.ReplaceAll(fastGossip, "\n", " "))
	rate := fs.Float64("rate", 200, "new connections per second, in total")
	nsrc := fs.Int("sources", 64, "IPv4 client source addresses of the load")
	timeout := fs.Duration("timeout", 300*time.Millisecond, "per-request timeout (shorter than the 1 s SYN retransmission, so a lost SYN is a failure)")
	victim := fs.Int("victim", 2, "node that dies")
	quiet := fs.Duration("quiet", 2*time.Second, "a trial's outage ends after this long without a failure")
	maxOutage := fs.Duration("max-outage", 20*time.Second, "give up waiting for recovery after this long")
	nodes := fs.Int("nodes", 3, "farm size")
	capture := fs.Bool("capture", true, "capture the SYN-ACKs the client receives (lab capture) and count SYNs answered twice")
	if err := b.parse(fs, args); err != nil {
		return nil, err
	}
	if len(extras) == 0 {
		extras = stringList{"", fastGossip}
	}
	switch {
	case *mode != "kill" && *mode != "link":
		return nil, fmt.Errorf("-mode %q: want kill or link", *mode)
	case *trials < 1 || *trials > 1000:
		return nil, fmt.Errorf("-trials %d: want 1..1000", *trials)
	case *nodes < 2:
		return nil, fmt.Errorf("-nodes %d: want 2 or more", *nodes)
	case *victim < 1 || *victim > *nodes:
		return nil, fmt.Errorf("-victim %d: want 1..%d", *victim, *nodes)
	case *rate <= 0 || *rate > 2000:
		return nil, fmt.Errorf("-rate %g: want 0..2000", *rate)
	case *nsrc < 1 || *nsrc > 64:
		return nil, fmt.Errorf("-sources %d: want 1..64", *nsrc)
	case *timeout <= 0:
		return nil, fmt.Errorf("-timeout %s: want > 0", *timeout)
	}
	rep := &failoverReport{
		Machine: readMachine(), Mode: *mode, Victim: fmt.Sprintf("web%d", *victim), Trials: *trials,
		Rate: *rate, Sources: *nsrc, Timeout: timeout.String(),
	}
	fo := &failoverBench{b: b, mode: *mode, victim: *victim, nodes: *nodes, rate: *rate, nsrc: *nsrc,
		timeout: *timeout, quiet: *quiet, maxOutage: *maxOutage, captures: *capture}
	var firstErr error
	for _, extra := range extras {
		s := &failoverSetting{Label: settingLabel(extra), Extra: extra}
		rep.Settings = append(rep.Settings, s)
		err := fo.setting(s, *trials, &rep.Machine)
		if err != nil {
			s.Error = err.Error()
			b.logf("setting %s: %v", s.Label, err)
			if firstErr == nil {
				firstErr = fmt.Errorf("setting %s: %w", s.Label, err)
			}
		}
		s.summarize()
		if b.ctx.Err() != nil {
			break
		}
	}
	rep.Machine.finish()
	printFailover(b, rep)
	return rep, firstErr
}

type failoverBench struct {
	b         *bench
	mode      string
	victim    int
	nodes     int
	rate      float64
	nsrc      int
	timeout   time.Duration
	quiet     time.Duration
	maxOutage time.Duration
	captures  bool
}

// setting builds a farm with extra, runs the load through all trials and
// removes the farm.
func (fo *failoverBench) setting(s *failoverSetting, trials int, m *machine) error {
	b := fo.b
	f, err := b.startFarm(fo.nodes, s.Extra)
	if err != nil {
		return err
	}
	defer b.closeLab(f.l)
	m.setFarm(f.l)
	srcs := f.l.ClientAddrs4[:fo.nsrc]
	if _, err := f.steady(srcs, 20*time.Second); err != nil {
		return fmt.Errorf("before the first trial: %w", err)
	}
	ld := startLoader(b.ctx, f.l, srcs, fo.rate, fo.timeout)
	defer ld.stop()
	for t := 1; t <= trials; t++ {
		tr, err := fo.trial(f, ld, t)
		if err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
		s.Trials = append(s.Trials, tr)
		b.logf("%s trial %d/%d: all sources succeed again %.0f ms after the %s (last failed request sent at %.0f ms; survivors saw web%d down at %.0f ms); %d failures, %d collateral; rejoin: %d of %d requests failed",
			s.Label, t, trials, tr.RecoveredMS, fo.mode, tr.LastFailedMS, fo.victim, tr.DetectedMS, tr.Failures, tr.Collateral, tr.RejoinFailures, tr.RejoinRequests)
	}
	return nil
}

func (fo *failoverBench) trial(f *farm, ld *loader, n int) (failoverTrial, error) {
	b := fo.b
	tr := failoverTrial{N: n}
	victimName := f.l.Node(fo.victim).Name
	if err := f.waitUp(fo.nodes, 60*time.Second); err != nil {
		return tr, err
	}
	stopCap, err := fo.capture(f)
	if err != nil {
		return tr, err
	}
	tPre := time.Now()
	if err := b.sleep(time.Second); err != nil {
		return tr, err
	}

	// The kill, and survivors' view polled meanwhile.
	dctx, dcancel := context.WithCancel(b.ctx)
	detected := fo.watchDetection(dctx, f)
	tKill := time.Now()
	if fo.mode == "kill" {
		err = f.killAgent(fo.victim)
	} else {
		err = f.linkDown(b.ctx, fo.victim)
	}
	if err != nil {
		dcancel()
		return tr, err
	}
	// Wait for the outage to end: quiet for a while after the last failure.
	deadline := tKill.Add(fo.maxOutage)
	for {
		if err := b.sleep(50 * time.Millisecond); err != nil {
			dcancel()
			return tr, err
		}
		now := time.Now()
		last := ld.lastFailure()
		if now.Sub(tKill) >= fo.quiet && (last.Before(tKill) || now.Sub(last) >= fo.quiet) {
			break
		}
		if now.After(deadline) {
			break
		}
	}

	dcancel()
	det := detected()
	if tr.OutageCapture, err = stopCap(); err != nil {
		return tr, err
	}
	if stopCap, err = fo.capture(f); err != nil {
		return tr, err
	}
	tRestore := time.Now()

	// Bring the victim back and wait for the farm to converge.
	if fo.mode == "kill" {
		err = f.startAgent(fo.victim)
	} else {
		err = f.linkUp(b.ctx, fo.victim)
		// An agent must survive its link going down; if it did not, say so
		// and start it again so the trials go on.
		if p := f.agents[fo.victim-1]; err == nil && p != nil && p.Exited() {
			tr.AgentExited = lastLine(p.Log())
			b.logf("trial %d: web%d's agent exited while its link was down: %s", n, fo.victim, tr.AgentExited)
			err = f.startAgent(fo.victim)
		}
	}
	if err != nil {
		return tr, err
	}
	if err := f.waitUp(fo.nodes, 60*time.Second); err != nil {
		return tr, fmt.Errorf("after bringing %s back: %w", victimName, err)
	}
	tUp := time.Now()
	if err := b.sleep(2 * time.Second); err != nil {
		return tr, err
	}
	tEnd := time.Now()
	if tr.RejoinCapture, err = stopCap(); err != nil {
		return tr, err
	}

	samples := ld.snapshot()
	tr.outage = analyzeOutage(samples, victimName, tKill, tRestore)
	tr.RecoveredMS, tr.LastFailedMS = ms(tr.Recovered), ms(tr.LastFailed)
	tr.PreRequests, tr.PreFailures, tr.PreErrors = window(samples, tPre, tKill)
	tr.RejoinRequests, tr.RejoinFailures, tr.RejoinErrors = window(samples, tRestore, tEnd)
	tr.RejoinSpan = failSpan(samples, tRestore, tEnd)
	tr.ConvergeMS = ms(tUp.Sub(tRestore))
	tr.Detected = map[string]float64{}
	tr.DetectedMS = -1
	all := true
	for node, at := range det {
		if at.IsZero() {
			tr.Detected[node] = -1
			all = false
			continue
		}
		d := ms(at.Sub(tKill))
		tr.Detected[node] = d
		tr.DetectedMS = max(tr.DetectedMS, d)
	}
	if !all {
		tr.DetectedMS = -1
	}
	// IPv6 after the rejoin, once: a link flap drops IPv6 addresses.
	v6 := f.l.ClientAddrs6[:min(len(f.l.ClientAddrs6), fo.nsrc)]
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	res := f.l.Burst(ctx, v6, 1, f.l.VIPURL)
	cancel()
	tr.V6After = fmt.Sprintf("%d/%d ok", res.OK(), res.Requests)
	if len(res.Failures) > 0 {
		tr.V6After += " (first failure: " + res.Failures[0].String() + ")"
	}
	return tr, nil
}

// watchDetection polls every survivor's API every 50 ms until ctx ends and
// returns a function giving, per survivor, when it first reported the
// victim not up (zero if never).
func (fo *failoverBench) watchDetection(ctx context.Context, f *farm) func() map[string]time.Time {
	victim := f.l.Node(fo.victim).Name
	var mu sync.Mutex
	seen := map[string]time.Time{}
	var wg sync.WaitGroup
	for i := 1; i <= fo.nodes; i++ {
		if i == fo.victim {
			continue
		}
		name := f.l.Node(i).Name
		seen[name] = time.Time{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				at := time.Now()
				st, err := f.apiStatus(ctx, i)
				if err == nil {
					down := true
					for _, n := range st.Nodes {
						if n.Name == victim && n.State == "up" && n.Buckets > 0 {
							down = false
						}
					}
					if down {
						mu.Lock()
						seen[name] = at
						mu.Unlock()
						return
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	return func() map[string]time.Time {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func (s *failoverSetting) summarize() {
	var rec, last, det []time.Duration
	for _, t := range s.Trials {
		if len(t.Unrecovered) > 0 {
			s.Unrecovered++
		}
		rec = append(rec, t.Recovered)
		last = append(last, t.LastFailed)
		if t.DetectedMS >= 0 {
			det = append(det, time.Duration(t.DetectedMS*float64(time.Millisecond)))
		}
		s.Collateral += t.Collateral
		s.PreFailures += t.PreFailures
		s.RejoinFail += t.RejoinFailures
		s.RejoinReqs += t.RejoinRequests
	}
	s.RecoveredP50, s.RecoveredMax = ms(medianDur(rec)), ms(maxDur(rec))
	s.LastFailedP50, s.LastFailedMax = ms(medianDur(last)), ms(maxDur(last))
	s.DetectedP50, s.DetectedMax = ms(medianDur(det)), ms(maxDur(det))
}

func printFailover(b *bench, rep *failoverReport) {
	out := b.out()
	how := "SIGKILL of its agent"
	if rep.Mode == "link" {
		how = "its link cut (eth0 down)"
	}
	fmt.Fprintf(out, "\nfarmbench failover: %s dies (%s); load: %.0f new connections/s from %d IPv4 sources, %s timeout each\n",
		rep.Victim, how, rep.Rate, rep.Sources, rep.Timeout)
	fmt.Fprintf(out, "%s\n", rep.Machine)
	for _, s := range rep.Settings {
		fmt.Fprintf(out, "\nsetting: %s\n", s.Label)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "trial\trecovered ms\tlast failed ms\tdetected ms\tfailures\tfailed srcs\tvictim srcs\tcollateral\terrors\tSYN-ACKs\tpre-kill fail\trejoin fail/req\trejoin failed (ms after restart; errors; srcs by server before)\trejoin SYN-ACKs\trejoin converge ms\tIPv6 after")
		for _, t := range s.Trials {
			rec := fmt.Sprintf("%.0f", t.RecoveredMS)
			if len(t.Unrecovered) > 0 {
				rec = fmt.Sprintf(">%.0f (%d srcs never)", ms(t.Recovered), len(t.Unrecovered))
			}
			det := "-"
			if t.DetectedMS >= 0 {
				det = fmt.Sprintf("%.0f", t.DetectedMS)
			}
			rj := "-"
			if t.RejoinFailures > 0 {
				rj = fmt.Sprintf("%.0f..%.0f; %s; %s", t.RejoinSpan.FirstMS, t.RejoinSpan.LastMS, fmtCounts(t.RejoinErrors), fmtCounts(t.RejoinSpan.Owners))
			}
			pre := fmt.Sprintf("%d/%d", t.PreFailures, t.PreRequests)
			if t.PreFailures > 0 {
				pre += " (" + fmtCounts(t.PreErrors) + ")"
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%d/%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%.0f\t%s\n", t.N, rec, t.LastFailedMS, det,
				t.Failures, t.Requests, t.FailedSources, t.VictimSources, t.Collateral, fmtCounts(t.Errors), t.OutageCapture,
				pre, t.RejoinFailures, t.RejoinRequests, rj, t.RejoinCapture, t.ConvergeMS, t.V6After)
		}
		_ = tw.Flush()
		for _, t := range s.Trials {
			if t.AgentExited != "" {
				fmt.Fprintf(out, "trial %d: the victim's agent exited while its link was down (restarted by farmbench): %s\n", t.N, t.AgentExited)
			}
		}
		if s.Error != "" {
			fmt.Fprintf(out, "ERROR: %s\n", s.Error)
		}
	}
	fmt.Fprintf(out, "\nsummary over trials (ms after %s; recovered = every source succeeds again)\n", how)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "setting\ttrials\trecovered p50\trecovered max\tlast failed p50\tlast failed max\tdetected p50\tdetected max\tcollateral\trejoin failures")
	for _, s := range rep.Settings {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d/%d\n", s.Label, len(s.Trials), s.RecoveredP50, s.RecoveredMax,
			s.LastFailedP50, s.LastFailedMax, s.DetectedP50, s.DetectedMax, s.Collateral, s.RejoinFail, s.RejoinReqs)
	}
	_ = tw.Flush()
	for _, s := range rep.Settings {
		if s.RecoveredMax > 1000 {
			fmt.Fprintf(out, "note: %s: the worst trial took %.0f ms, above the design's 1 s\n", s.Label, s.RecoveredMax)
		}
		if s.Unrecovered > 0 {
			fmt.Fprintf(out, "note: %s: %d trials had sources that never succeeded again within the window\n", s.Label, s.Unrecovered)
		}
		if s.Collateral > 0 {
			fmt.Fprintf(out, "note: %s: %d failures hit sources the victim did not serve\n", s.Label, s.Collateral)
		}
		if s.RejoinFail > 0 {
			errs := map[string]int{}
			doubles := 0
			for _, t := range s.Trials {
				for k, v := range t.RejoinErrors {
					errs[k] += v
				}
				if t.RejoinCapture != nil {
					doubles += t.RejoinCapture.Doubles
				}
			}
			fmt.Fprintf(out, "note: %s: %d requests failed while the victim rejoined (%s; %d SYNs answered twice): a planned join should fail none."+
				" A timeout is a SYN nobody answered within %s (a real client retransmits it after 1 s); a reset after a double answer is a broken connection\n",
				s.Label, s.RejoinFail, fmtCounts(errs), doubles, rep.Timeout)
		}
	}
}

// lastLine is the last non-empty line of a log.
func lastLine(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// fmtCounts renders {"timeout": 3} as "timeout 3".
func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
