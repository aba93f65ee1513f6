//go:build linux

package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/internal/testenv"
	"github.com/webfarm/farm/tests/lab"
)

var (
	flagDuration = flag.Duration("chaos.duration", 2*time.Minute, "how long the soak applies faults (make chaos: 10m)")
	flagSeed     = flag.Uint64("chaos.seed", 0, "schedule seed; 0 picks one from the clock (always printed)")
	flagKinds    = flag.String("chaos.kinds", "", "comma-separated fault kinds to schedule (default: all)")
	flagLogs     = flag.String("chaos.logs", "", "on failure copy the agents' full logs here (default: $TMPDIR/chaos-<lab id>)")
)

const (
	prefix = "chaos"
	nodes  = 4

	longConns    = 32                     // keep-alive connections per family (64 in all)
	longInterval = 250 * time.Millisecond // one request per keep-alive connection
	newWorkers   = 16                     // new-connection workers ...
	newInterval  = 80 * time.Millisecond  // ... each one every 80 ms: ~200 new connections/s
	reqTimeout   = 5 * time.Second        // a SYN answered at its second retransmission (3 s) still counts
	agreeMax     = 60 * time.Second       // give up waiting for agreement after a heal
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() == 0 {
		_ = lab.CleanupStale(prefix)
	}
	os.Exit(m.Run())
}

// TestChaos is the soak: see the package doc and README.md.
func TestChaos(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	replay := fmt.Sprintf("go test -count=1 -v -run TestChaos ./tests/chaos/ -chaos.duration=%s -chaos.seed=%d", *flagDuration, seed)
	if *flagKinds != "" {
		replay += fmt.Sprintf(" -chaos.kinds=%q", *flagKinds)
	}
	fmt.Printf("chaos seed %d; replay: %s\n", seed, replay)
	t.Logf("chaos seed %d; replay: %s", seed, replay)
	lab.Require(t)
	for _, bin := range []string{"tcpdump", "nft"} {
		_, err := exec.LookPath(bin)
		testenv.Need(t, err == nil, "chaos: "+bin+" not found in PATH")
	}
	// The estimates are rough: schedule three times the duration and run
	// faults until the deadline. A replay runs the same faults in the same
	// order; how many fit depends on the machine.
	kinds, err := ParseKinds(*flagKinds)
	if err != nil {
		t.Fatal(err)
	}
	steps := ScheduleOf(seed, 3**flagDuration, nodes, kinds)
	var sched []string
	for _, s := range steps[:len(ScheduleOf(seed, *flagDuration, nodes, kinds))] {
		sched = append(sched, s.String())
	}
	t.Logf("schedule (the first %d of %d faults; the run goes on until its deadline):\n  %s", len(sched), len(steps), strings.Join(sched, "\n  "))

	c := newChaos(t)
	SynLinearTimeouts = c.synLinearTimeouts()
	c.startFarm()
	before := c.metrics()
	capt, err := c.startCapture()
	if err != nil {
		t.Fatal(err)
	}
	ld := startLoad(c.l)
	defer ld.stop()
	load := startLoadavg()
	time.Sleep(3 * time.Second) // steady time before the first fault

	deadline := time.Now().Add(*flagDuration)
	var windows []Window
	ran := 0
	for _, s := range steps {
		if time.Now().After(deadline) {
			break
		}
		w := c.apply(s)
		windows = append(windows, w)
		ran++
		t.Logf("%s %s: heal +%s, agreed %s after the heal%s", w.Start.UTC().Format("15:04:05.000"), s, w.Heal.Sub(w.Start).Round(time.Millisecond),
			fmtTTA(w.TTA()), noteText(w))
		if w.Agreed.IsZero() {
			t.Errorf("the farm never agreed again after %s: stopping the schedule", s)
			break
		}
		time.Sleep(s.Gap)
	}
	time.Sleep(2 * time.Second)
	ld.stop()
	loadMax, loadEnd := load.stop()
	rep, cerr := capt.Stop()
	if cerr != nil {
		t.Errorf("capture: %v", cerr)
	}
	var doubles []Double
	for _, d := range rep.Doubles {
		doubles = append(doubles, Double{At: d.At, What: d.String()})
	}
	recs, lost := ld.results()
	a := Analyze(windows, recs, lost, doubles)
	after, leaks := c.leaks(before)

	t.Logf("capture: %d SYN-ACKs by node %v, %d SYNs answered twice, %d dropped by the kernel",
		rep.SynAcks, rep.BySource, len(rep.Doubles), rep.KernelDropped)
	t.Logf("load: %d requests (%d keep-alive connections, ~%d new connections/s from %d sources); CPU load average max %.2f, at the end %s (2 vCPUs)",
		len(recs), 2*longConns, int(float64(newWorkers)/newInterval.Seconds()), 2*longConns, loadMax, loadEnd)
	t.Logf("agents: goroutines and open fds before -> after: %s", after)
	t.Logf("CHAOS REPORT seed %d, %d of %d scheduled faults in %s:\n%s", seed, ran, len(steps), *flagDuration, a.Table())
	for _, d := range a.Details {
		t.Logf("violation: %s", d)
	}
	for _, l := range leaks {
		t.Errorf("agent leak: %s", l)
	}
	if rep.KernelDropped > 0 {
		t.Logf("warning: tcpdump dropped %d frames: the double-answer check may have missed some", rep.KernelDropped)
	}
	if n := a.Violations(); n > 0 || len(leaks) > 0 || t.Failed() {
		t.Errorf("%d invariant violations, %d leaks; replay with: %s", n, len(leaks), replay)
	}
}

func fmtTTA(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func noteText(w Window) string {
	s := ""
	if w.Err != "" {
		s += "; ERROR " + w.Err
	}
	if len(w.Notes) > 0 {
		s += "; " + strings.Join(w.Notes, "; ")
	}
	return s
}

// synLinearTimeouts reads net.ipv4.tcp_syn_linear_timeouts in the client's
// namespace (0 when the kernel has none: classic exponential backoff).
func (c *chaos) synLinearTimeouts() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.l.Exec(ctx, c.l.Client.NS, "cat", "/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0
	}
	return n
}

// chaos is the farm under test.
type chaos struct {
	t      *testing.T
	l      *lab.Lab
	agents [nodes]*lab.Proc
	weight [nodes]int
}

func newChaos(t *testing.T) *chaos {
	l := lab.ForTest(t, lab.Options{Nodes: nodes, Prefix: prefix, RequestTimeout: reqTimeout})
	if !l.HaveFarm() {
		t.Fatalf("%s is missing: run make build first", l.FarmBin())
	}
	t.Cleanup(func() { // before the lab's own cleanup removes the logs
		if !t.Failed() {
			return
		}
		dir := *flagLogs
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "chaos-"+l.ID)
		}
		_ = os.MkdirAll(dir, 0o755)
		for i := 1; i <= nodes; i++ {
			if b, err := os.ReadFile(l.AgentLogPath(i)); err == nil {
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("web%d.log", i)), b, 0o644)
			}
		}
		t.Logf("full agent logs copied to %s", dir)
	})
	c := &chaos{t: t, l: l}
	for i := range c.weight {
		c.weight[i] = 100
	}
	return c
}

// config is node i's agent config: the witness (the client's own address)
// for even splits, a drain timeout no drain step reaches (with an [app], a
// drain that times out stops the application and so its flows), and an HTTP checker that restarts
// a dead nginx (with a restart limit a soak does not reach). The checker
// probes every 300 ms with fall 2, so a dead nginx is noticed within about
// 0.6 s and its clients are served elsewhere within the soak's 1 s (every
// 500 ms with fall 2 took 1.00-1.03 s: the bar missed by milliseconds).
func (c *chaos) config(i int) string {
	l := c.l
	return l.NodeConfig(i, fmt.Sprintf(`
[node]
weight = %d
drain_timeout = "5m"

[gossip]
witness = %q

[app]
start = %q
stop = %q
max_restarts = 1000

[[checker]]
name = "web"
type = "http"
target = "http://127.0.0.1/"
interval = "300ms"
timeout = "200ms"
fall = 2
rise = 2
action = "restart"
`, c.weight[i-1], l.Client.Addr4.String(), l.NginxStartScript(i), l.NginxStopScript(i)))
}

func (c *chaos) startAgent(i int) error {
	p, err := c.l.StartAgent(i, c.config(i))
	if err != nil {
		return err
	}
	c.agents[i-1] = p
	return nil
}

func (c *chaos) startFarm() {
	c.t.Helper()
	for i := 1; i <= nodes; i++ {
		if err := c.l.StartNginx(i); err != nil {
			c.t.Fatalf("nginx on web%d: %v", i, err)
		}
	}
	for i := 1; i <= nodes; i++ {
		if err := c.startAgent(i); err != nil {
			c.t.Fatal(err)
		}
	}
	c.t.Cleanup(func() {
		for _, p := range c.agents {
			if p != nil {
				_ = p.Signal(syscall.SIGCONT)
				_ = p.Stop()
			}
		}
	})
	if _, err := c.waitAgreed(30 * time.Second); err != nil {
		c.t.Fatalf("the farm did not converge: %v", err)
	}
	// The agents agree before every VIP is claimed: wait until every source
	// is answered.
	err := lab.Poll(context.Background(), 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res := c.l.Burst(ctx, c.l.Sources(64), 1, c.l.VIPURL)
		if len(res.Failures) > 0 {
			return fmt.Errorf("%d of %d sources not served, first %+v", len(res.Failures), res.Requests, res.Failures[0])
		}
		if len(res.PerNode) != nodes {
			return fmt.Errorf("answered by %v", res.PerNode)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("the farm does not serve: %v", err)
	}
}

func (c *chaos) startCapture() (*lab.Capture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.l.StartCapture(ctx)
}

// agreed checks, once, that every node's agent answers, has quorum, sees
// every node up with buckets and its configured weight, and that all report
// the same table version.
func (c *chaos) agreed() error {
	var mu sync.Mutex
	var errs []error
	versions := map[string]int{}
	var wg sync.WaitGroup
	for i := 1; i <= nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var st console.Status
			err := c.l.AgentGet(ctx, i, "/api/v1/status?detail=0", &st)
			if err == nil {
				err = c.checkStatus(st)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("web%d: %w", i, err))
				return
			}
			versions[st.TableVersion]++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(versions) != 1 {
		return fmt.Errorf("table versions differ: %v", versions)
	}
	return nil
}

func (c *chaos) checkStatus(st console.Status) error {
	if !st.Quorum {
		return errors.New("no quorum")
	}
	up := 0
	var view []string
	for _, n := range st.Nodes {
		view = append(view, fmt.Sprintf("%s=%s/w%d/%d", n.Name, n.State, n.Weight, n.Buckets))
		if n.State == "up" && n.Buckets > 0 && !n.Suspect && n.ID >= 1 && n.ID <= nodes && n.Weight == c.weight[n.ID-1] {
			up++
		}
	}
	if up != nodes {
		return fmt.Errorf("%d of %d nodes up as configured: %s", up, nodes, strings.Join(view, " "))
	}
	return nil
}

// waitAgreed polls agreed every 100 ms for up to d and returns when it held.
func (c *chaos) waitAgreed(d time.Duration) (time.Time, error) {
	end := time.Now().Add(d)
	var last error
	for time.Now().Before(end) {
		if last = c.agreed(); last == nil {
			return time.Now(), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Time{}, last
}

// farmCLI runs `farm ARGS...` against node via's agent.
func (c *chaos) farmCLI(via int, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full := append([]string{c.l.FarmBin()}, args...)
	full = append(full, "--config", c.l.AgentConfigPath(via))
	out, err := c.l.Exec(ctx, c.l.Node(via).NS, full...)
	if err != nil {
		return fmt.Errorf("farm %s on web%d: %v: %s", strings.Join(args, " "), via, err, out)
	}
	return nil
}

// waitState waits until every running agent shows node n in state.
func (c *chaos) waitState(n int, state string, d time.Duration) error {
	return lab.Poll(context.Background(), d, func() error {
		for i := 1; i <= nodes; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var st console.Status
			err := c.l.AgentGet(ctx, i, "/api/v1/status?detail=0", &st)
			cancel()
			if err != nil {
				return err
			}
			for _, ns := range st.Nodes {
				if ns.ID == n && ns.State != state {
					return fmt.Errorf("web%d sees web%d %s", i, n, ns.State)
				}
			}
		}
		return nil
	})
}

// apply runs one step: the fault, its hold, its heal, and the wait until
// the farm agrees again.
func (c *chaos) apply(s Step) Window {
	w := Window{Step: s, Start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := s.Nodes[0]
	fail := func(err error) {
		if err != nil && w.Err == "" {
			w.Err = err.Error()
		}
	}
	// The heal begins with its first command (an unisolate or a link up takes
	// effect while the command runs), so the window's heal time is taken
	// just before it: a request started during the command belongs to the
	// heal, not to the fault.
	healing := func() {
		if w.Heal.IsZero() {
			w.Heal = time.Now()
		}
	}
	switch s.Kind {
	case KillAgent:
		fail(c.agents[n-1].Kill())
		time.Sleep(s.Hold)
		healing()
		fail(c.startAgent(n))
	case KillNginx:
		pids, err := c.l.KillNginx(n)
		fail(err)
		w.Notes = append(w.Notes, fmt.Sprintf("killed nginx pids %v", pids))
		fail(lab.Poll(ctx, 30*time.Second, func() error {
			if !c.l.NginxRunning(n) {
				return fmt.Errorf("nginx of web%d not restarted by its agent", n)
			}
			return nil
		}))
	case CutLink:
		fail(c.l.SetLink(ctx, n, false))
		time.Sleep(s.Hold)
		healing()
		fail(c.l.SetLink(ctx, n, true))
	case Split1v3:
		var peers []int
		for i := 1; i <= nodes; i++ {
			if i != n {
				peers = append(peers, i)
			}
		}
		fail(c.l.Isolate(ctx, n, peers, netip.Addr{}))
		time.Sleep(s.Hold)
		healing()
		fail(c.l.Unisolate(ctx, n))
	case Split2v2:
		var others []int
		for i := 1; i <= nodes; i++ {
			if i != s.Nodes[0] && i != s.Nodes[1] {
				others = append(others, i)
			}
		}
		for _, i := range s.Nodes {
			fail(c.l.Isolate(ctx, i, others, c.l.Client.Addr4))
		}
		time.Sleep(s.Hold)
		healing()
		for _, i := range s.Nodes {
			fail(c.l.Unisolate(ctx, i))
		}
	case Stall:
		fail(c.agents[n-1].Signal(syscall.SIGSTOP))
		time.Sleep(s.Hold)
		healing()
		fail(c.agents[n-1].Signal(syscall.SIGCONT))
	case Drain:
		// The node keeps its keep-alive flows while draining (the drain
		// timeout is far away): started again before it stops.
		fail(c.farmCLI(s.Via, "drain", fmt.Sprintf("web%d", n)))
		fail(c.waitState(n, "draining", 20*time.Second))
		w.Notes = append(w.Notes, fmt.Sprintf("every node saw web%d draining %s after the drain", n, time.Since(w.Start).Round(time.Millisecond)))
		time.Sleep(s.Hold)
		healing()
		fail(c.farmCLI(s.Via, "start", fmt.Sprintf("web%d", n)))
	case Weight:
		fail(c.reweight(n, s.Weight))
		time.Sleep(s.Hold)
		healing()
		fail(c.reweight(n, 100))
	case LeaveJoin:
		fail(c.agents[n-1].Stop())
		time.Sleep(s.Hold)
		healing()
		fail(c.startAgent(n))
	default:
		fail(fmt.Errorf("unknown fault kind %q", s.Kind))
	}
	healing() // kill-nginx: healed when its checker restarted it
	agreed, err := c.waitAgreed(agreeMax)
	if err != nil {
		w.Notes = append(w.Notes, "last disagreement: "+err.Error())
	}
	w.Agreed = agreed
	w.End = time.Now().Add(time.Second)
	if !agreed.IsZero() {
		time.Sleep(time.Until(w.End))
	}
	return w
}

// reweight writes node n's config with a new weight and reloads it.
func (c *chaos) reweight(n, weight int) error {
	c.weight[n-1] = weight
	if err := os.WriteFile(c.l.AgentConfigPath(n), []byte(c.config(n)), 0o644); err != nil {
		return err
	}
	return c.agents[n-1].Signal(syscall.SIGHUP)
}

// usage is an agent's goroutines and open files.
type usage struct{ goroutines, fds float64 }

func (c *chaos) metrics() [nodes]usage {
	var out [nodes]usage
	for i := 1; i <= nodes; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, err := c.l.AgentMetrics(ctx, i)
		cancel()
		if err != nil {
			c.t.Errorf("metrics of web%d: %v", i, err)
			continue
		}
		out[i-1] = usage{m["go_goroutines"], m["process_open_fds"]}
	}
	return out
}

// leaks compares the agents' goroutines and open files with before, giving
// them up to 20 s to settle, and lists what grew past its slack.
func (c *chaos) leaks(before [nodes]usage) (string, []string) {
	var now [nodes]usage
	var bad []string
	for try := 0; try < 20; try++ {
		now = c.metrics()
		bad = nil
		for i := range now {
			b, a := before[i], now[i]
			if a.goroutines > b.goroutines*1.2+10 {
				bad = append(bad, fmt.Sprintf("web%d goroutines %.0f -> %.0f", i+1, b.goroutines, a.goroutines))
			}
			if a.fds > b.fds+10 {
				bad = append(bad, fmt.Sprintf("web%d open fds %.0f -> %.0f", i+1, b.fds, a.fds))
			}
		}
		if len(bad) == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	var parts []string
	for i := range now {
		parts = append(parts, fmt.Sprintf("web%d %.0f/%.0f -> %.0f/%.0f", i+1, before[i].goroutines, before[i].fds, now[i].goroutines, now[i].fds))
	}
	return strings.Join(parts, ", "), bad
}

// loadavg samples /proc/loadavg every 5 s.
type loadavg struct {
	stopc chan struct{}
	done  chan struct{}
	max   float64
}

func startLoadavg() *loadavg {
	la := &loadavg{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(la.done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			var one float64
			if b, err := os.ReadFile("/proc/loadavg"); err == nil {
				fmt.Sscanf(string(b), "%f", &one)
			}
			la.max = max(la.max, one)
			select {
			case <-la.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return la
}

func (la *loadavg) stop() (float64, string) {
	close(la.stopc)
	<-la.done
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return la.max, strings.Join(f[:3], " ")
	}
	return la.max, "?"
}

// load is the client side: keep-alive connections and new connections,
// every request recorded.
type load struct {
	l        *lab.Lab
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopping atomic.Bool

	mu   sync.Mutex
	recs []Rec
	lost []Event
}

func startLoad(l *lab.Lab) *load {
	// The test stops the load; the timeout bounds a test that dies first.
	ctx, cancel := context.WithTimeout(context.Background(), *flagDuration+10*time.Minute)
	ld := &load{l: l, cancel: cancel}
	var long, fresh []netip.Addr
	for k := 0; k < longConns; k++ {
		long = append(long, l.ClientAddrs4[k], l.ClientAddrs6[k])
	}
	for k := longConns; k < 2*longConns; k++ {
		fresh = append(fresh, l.ClientAddrs4[k], l.ClientAddrs6[k])
	}
	for _, src := range long {
		ld.wg.Add(1)
		go ld.runLong(ctx, src)
	}
	per := len(fresh) / newWorkers
	for w := 0; w < newWorkers; w++ {
		ld.wg.Add(1)
		go ld.runNew(ctx, fresh[w*per:(w+1)*per])
	}
	return ld
}

func (ld *load) add(r Rec) {
	ld.mu.Lock()
	ld.recs = append(ld.recs, r)
	ld.mu.Unlock()
}

func (ld *load) runLong(ctx context.Context, src netip.Addr) {
	defer ld.wg.Done()
	base := ld.l.DialContext(ld.l.Client.NS, src)
	var dials atomic.Int32
	// A dial after a failed request is the failure's consequence, already
	// counted; a dial after a success means the transport lost the
	// connection under an idle moment and retried on a new one.
	var lastFailed atomic.Bool
	client := &http.Client{
		Timeout: reqTimeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if dials.Add(1) > 1 && !lastFailed.Load() && !ld.stopping.Load() {
					ld.mu.Lock()
					ld.lost = append(ld.lost, Event{Src: src, At: time.Now(), What: "dialled again"})
					ld.mu.Unlock()
				}
				return base(ctx, network, addr)
			},
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		},
	}
	defer client.CloseIdleConnections()
	url := ld.l.VIPURL(src)
	tick := time.NewTicker(longInterval)
	defer tick.Stop()
	for {
		start := time.Now()
		body, err := lab.GetWith(ctx, client, url)
		if ctx.Err() != nil {
			return
		}
		r := Rec{Src: src, Long: true, Start: start, End: time.Now(), Node: body}
		if err != nil {
			r.Err = err.Error()
		}
		lastFailed.Store(err != nil)
		ld.add(r)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (ld *load) runNew(ctx context.Context, srcs []netip.Addr) {
	defer ld.wg.Done()
	tick := time.NewTicker(newInterval)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		src := srcs[k%len(srcs)]
		start := time.Now()
		body, retx, err := ld.l.GetNew(ctx, ld.l.Client.NS, src, ld.l.VIPURL(src), reqTimeout)
		if ctx.Err() != nil {
			return
		}
		r := Rec{Src: src, Start: start, End: time.Now(), Node: body, Retx: retx}
		if err != nil {
			r.Err = err.Error()
		}
		ld.add(r)
	}
}

// stop ends the load and waits for it; idempotent.
func (ld *load) stop() {
	if ld.stopping.Swap(true) {
		return
	}
	ld.cancel()
	ld.wg.Wait()
}

func (ld *load) results() ([]Rec, []Event) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.recs, ld.lost
}
