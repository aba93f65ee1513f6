package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"sync"
	"text/tabwriter"
	"time"
)

type recoveryReport struct {
	Machine  machine         `json:"machine"`
	Victim   string          `json:"victim"`
	Extra    string          `json:"extra_toml"`
	Timeout  string          `json:"request_timeout"`
	Interval string          `json:"request_interval"`
	Trials   []recoveryTrial `json:"trials"`
	P50      float64         `json:"recovered_ms_p50"`
	Max      float64         `json:"recovered_ms_max"`
	Error    string          `json:"error,omitempty"`
}

// recoveryTrial is one keep-alive client losing its node.
type recoveryTrial struct {
	N      int    `json:"trial"`
	Source string `json:"source"`
	// KeptAlive says the requests before the death shared one connection.
	KeptAlive bool `json:"kept_alive"`
	// RecoveredMS: from the kill until the end of the first good answer to
	// a request sent once the node was dead (agent killed and link down).
	RecoveredMS float64 `json:"recovered_ms"`
	// DeadMS: from the kill until the link was down too.
	DeadMS float64 `json:"dead_ms"`
	// Answer is the node that gave it; NewConn whether it came on a new
	// connection (the old one was given up).
	Answer  string `json:"answer"`
	NewConn bool   `json:"new_connection"`
	// Attempts counts requests sent after the death until the good one.
	Attempts int            `json:"attempts"`
	Errors   map[string]int `json:"errors,omitempty"`
	// FirstErrorMS: when the first failed request after the death ended.
	FirstErrorMS float64 `json:"first_error_ms"`
}

// reqSample is one request of the keep-alive client.
type reqSample struct {
	Start, End time.Time
	OK         bool
	Node       string
	Reused     bool
	Local      string
	Err        string
}

func runRecovery(b *bench, args []string) (any, error) {
	fs := b.flags("recovery [-trials 5] [-extra TOML] [-timeout 1s] [-interval 20ms]")
	trials := fs.Int("trials", 5, "deaths to measure")
	extra := fs.String("extra", "", "agent config TOML merged over the lab's defaults")
	timeout := fs.Duration("timeout", time.Second, "per-request timeout of the client")
	interval := fs.Duration("interval", 20*time.Millisecond, "pause between the client's requests")
	attempts := fs.Int("attempts", 30, "requests after the death before giving up")
	victim := fs.Int("victim", 2, "node that dies")
	nodes := fs.Int("nodes", 3, "farm size")
	if err := b.parse(fs, args); err != nil {
		return nil, err
	}
	switch {
	case *trials < 1 || *trials > 100:
		return nil, fmt.Errorf("-trials %d: want 1..100", *trials)
	case *nodes < 2:
		return nil, fmt.Errorf("-nodes %d: want 2 or more", *nodes)
	case *victim < 1 || *victim > *nodes:
		return nil, fmt.Errorf("-victim %d: want 1..%d", *victim, *nodes)
	case *timeout <= 0 || *attempts < 1:
		return nil, fmt.Errorf("-timeout %s -attempts %d: want > 0", *timeout, *attempts)
	}
	rep := &recoveryReport{Machine: readMachine(), Victim: fmt.Sprintf("web%d", *victim), Extra: *extra,
		Timeout: timeout.String(), Interval: interval.String()}
	rb := &recoveryBench{b: b, victim: *victim, nodes: *nodes, timeout: *timeout, interval: *interval, attempts: *attempts}
	err := rb.runAll(rep, *trials, *extra)
	if err != nil {
		rep.Error = err.Error()
	}
	var rec []time.Duration
	for _, t := range rep.Trials {
		rec = append(rec, time.Duration(t.RecoveredMS*float64(time.Millisecond)))
	}
	rep.P50, rep.Max = ms(medianDur(rec)), ms(maxDur(rec))
	rep.Machine.finish()
	printRecovery(b, rep)
	return rep, err
}

type recoveryBench struct {
	b        *bench
	victim   int
	nodes    int
	timeout  time.Duration
	interval time.Duration
	attempts int
}

func (rb *recoveryBench) runAll(rep *recoveryReport, trials int, extra string) error {
	f, err := rb.b.startFarm(rb.nodes, extra)
	if err != nil {
		return err
	}
	rep.Machine.setFarm(f.l)
	for t := 1; t <= trials; t++ {
		tr, err := rb.trial(f, t)
		if err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
		rep.Trials = append(rep.Trials, tr)
		rb.b.logf("trial %d/%d: source %s answered by %s %.0f ms after the kill (%d attempts, errors %s, new connection %v)",
			t, trials, tr.Source, tr.Answer, tr.RecoveredMS, tr.Attempts, fmtCounts(tr.Errors), tr.NewConn)
	}
	return nil
}

func (rb *recoveryBench) trial(f *farm, n int) (recoveryTrial, error) {
	b := rb.b
	tr := recoveryTrial{N: n}
	victim := f.l.Node(rb.victim).Name
	if err := f.waitUp(rb.nodes, 60*time.Second); err != nil {
		return tr, err
	}
	var src netip.Addr
	for _, a := range f.l.ClientAddrs4 {
		who, err := f.owner(b.ctx, a)
		if err != nil {
			return tr, fmt.Errorf("ask the VIP from %s: %w", a, err)
		}
		if who == victim {
			src = a
			break
		}
	}
	if !src.IsValid() {
		return tr, fmt.Errorf("no client source is served by %s", victim)
	}
	tr.Source = src.String()

	// One keep-alive connection, kept busy until the victim is dead.
	cl := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         f.l.DialContext(f.l.Client.NS, src),
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     time.Minute,
	}}
	defer cl.CloseIdleConnections()
	url := f.l.VIPURL(src)
	var mu sync.Mutex
	var samples []reqSample
	var dead time.Time // set once the node is dead
	good := make(chan struct{})
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		closed := false
		after := 0
		for ctx.Err() == nil {
			s := rb.one(ctx, cl, url)
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			samples = append(samples, s)
			if !dead.IsZero() && !s.Start.Before(dead) {
				after++
				if (s.OK || after >= rb.attempts) && !closed {
					close(good)
					closed = true
				}
			}
			mu.Unlock()
			if closed {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(rb.interval):
			}
		}
	}()
	// Let the client settle on its connection.
	if err := b.sleep(500 * time.Millisecond); err != nil {
		return tr, err
	}
	mu.Lock()
	pre := append([]reqSample(nil), samples...)
	mu.Unlock()
	if len(pre) < 2 {
		return tr, fmt.Errorf("the client sent %d requests in 500 ms before the kill", len(pre))
	}
	tr.KeptAlive = true
	for i, s := range pre {
		if !s.OK || s.Node != victim {
			return tr, fmt.Errorf("before the kill, request %d from %s: ok %v, answered by %q, want %s (%s)", i, src, s.OK, s.Node, victim, s.Err)
		}
		if i > 0 && (!s.Reused || s.Local != pre[0].Local) {
			tr.KeptAlive = false
		}
	}

	tKill := time.Now()
	if err := f.killAgent(rb.victim); err != nil {
		return tr, err
	}
	if err := f.linkDown(b.ctx, rb.victim); err != nil {
		return tr, err
	}
	tDead := time.Now()
	mu.Lock()
	dead = tDead
	mu.Unlock()
	tr.DeadMS = ms(tDead.Sub(tKill))
	limit := time.Duration(rb.attempts+2) * (rb.timeout + rb.interval)
	select {
	case <-good:
	case <-time.After(limit):
		cancel()
	case <-b.ctx.Done():
	}
	cancel()
	wg.Wait()
	if b.ctx.Err() != nil {
		return tr, b.ctx.Err()
	}
	mu.Lock()
	all := samples
	mu.Unlock()
	oldLocal := pre[0].Local
	for _, s := range all {
		if s.Start.Before(tDead) {
			continue
		}
		tr.Attempts++
		if !s.OK {
			if tr.Errors == nil {
				tr.Errors = map[string]int{}
				tr.FirstErrorMS = ms(s.End.Sub(tKill))
			}
			tr.Errors[s.Err]++
			continue
		}
		tr.RecoveredMS = ms(s.End.Sub(tKill))
		tr.Answer = s.Node
		tr.NewConn = s.Local != oldLocal
		break
	}
	if tr.Answer == "" {
		return tr, fmt.Errorf("no good answer within %d attempts after %s died (errors %s)", tr.Attempts, victim, fmtCounts(tr.Errors))
	}

	// Bring the victim back.
	if err := f.linkUp(b.ctx, rb.victim); err != nil {
		return tr, err
	}
	if err := f.startAgent(rb.victim); err != nil {
		return tr, err
	}
	return tr, f.waitUp(rb.nodes, 60*time.Second)
}

// one sends a request on the client's (kept) connection and records which
// connection carried it.
func (rb *recoveryBench) one(ctx context.Context, cl *http.Client, url string) reqSample {
	s := reqSample{Start: time.Now()}
	rctx, cancel := context.WithTimeout(ctx, rb.timeout)
	defer cancel()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		s.Reused = info.Reused
		if a, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
			s.Local = a.String()
		}
	}}
	var err error
	s.Node, err = getNode(httptrace.WithClientTrace(rctx, trace), cl, url)
	s.End = time.Now()
	s.OK = err == nil
	s.Err = errClass(err)
	return s
}

func printRecovery(b *bench, rep *recoveryReport) {
	out := b.out()
	fmt.Fprintf(out, "\nfarmbench recovery: a keep-alive client served by %s; %s dies (agent SIGKILLed, then its link down);\n", rep.Victim, rep.Victim)
	fmt.Fprintf(out, "the client keeps sending on its connection (%s timeout per request, %s apart)\n", rep.Timeout, rep.Interval)
	fmt.Fprintf(out, "%s\n\n", rep.Machine)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "trial\tsource\tkept alive\trecovered ms\tanswered by\tnew conn\tattempts\terrors\tfirst error ms\tdead after ms")
	for _, t := range rep.Trials {
		fmt.Fprintf(tw, "%d\t%s\t%v\t%.0f\t%s\t%v\t%d\t%s\t%.0f\t%.0f\n", t.N, t.Source, t.KeptAlive, t.RecoveredMS, t.Answer, t.NewConn,
			t.Attempts, fmtCounts(t.Errors), t.FirstErrorMS, t.DeadMS)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nrecovered (ms from the kill to the first good answer): p50 %.0f, max %.0f over %d trials\n", rep.P50, rep.Max, len(rep.Trials))
	if rep.Error != "" {
		fmt.Fprintf(out, "ERROR: %s\n", rep.Error)
	}
}
