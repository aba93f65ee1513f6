//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/tests/lab"
)

// Debugging knobs: PC_PCAP=DIR writes pcaps of the client's switch port
// (planned.pcap, restart.pcap); PC_LOGS=DIR copies every agent's full log
// there before the lab is removed.

// Load shape shared by the planned-change tests.
const (
	pcLongInterval = 100 * time.Millisecond // one request per long-lived connection
	pcNewInterval  = 200 * time.Millisecond // per new-connection worker
	pcNewWorkers   = 10                     // 10 workers x 5/s = ~50 new connections/s
	pcReqTimeout   = 3 * time.Second        // per request, long-lived and new
	pcStepPause    = 2500 * time.Millisecond
	pcConverge     = 20 * time.Second
	// pcSwitchWait covers the announced switch time of a planned change
	// (gossip.switch_lead, default 500ms, plus the margin): a node that
	// drains or stops answers its buckets until then, so the phases that
	// count on it being out of the farm start after it.
	pcSwitchWait = 600 * time.Millisecond
)

// pcStartPartialFarm builds a lab of `nodes` nodes with nginx on every one but
// starts agents only on nodes 1..running (extra[i] merged into node i's
// config) and waits until those agents see `running` nodes up. The other
// nodes join later with f.startAgent.
func pcStartPartialFarm(t *testing.T, o lab.Options, running int, extra map[int]string) *farm {
	t.Helper()
	o.Prefix = prefix
	l := lab.ForTest(t, o)
	if dir := os.Getenv("PC_LOGS"); dir != "" {
		t.Cleanup(func() { // runs before the lab's own cleanup removes the logs
			_ = os.MkdirAll(dir, 0o755)
			for i := 1; i <= o.Nodes; i++ {
				if b, err := os.ReadFile(l.AgentLogPath(i)); err == nil {
					_ = os.WriteFile(fmt.Sprintf("%s/web%d.log", dir, i), b, 0o644)
				}
			}
		})
	}
	if !l.HaveFarm() {
		t.Fatalf("%s is missing: run make build first", l.FarmBin())
	}
	f := &farm{t: t, l: l, agents: make([]*lab.Proc, o.Nodes)}
	for i := 1; i <= o.Nodes; i++ {
		if err := l.StartNginx(i); err != nil {
			t.Fatalf("nginx on node %d: %v", i, err)
		}
	}
	for i := 1; i <= running; i++ {
		f.startAgent(i, extra[i])
	}
	f.waitUp(running, pcConverge)
	return f
}

// pcWaitServing waits until every source is answered by its expected owner
// among ids: agents report each other up before their VIPs are claimed, and
// the load must start on a farm that serves. It logs how long that took.
func (f *farm) pcWaitServing(ids []uint8, srcs []netip.Addr) {
	f.t.Helper()
	start := time.Now()
	rounds := 0
	err := lab.Poll(context.Background(), 30*time.Second, func() error {
		rounds++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := f.l.Burst(ctx, srcs, 1, f.l.VIPURL)
		if len(res.Failures) > 0 {
			return fmt.Errorf("%d of %d sources not served, first: %v", len(res.Failures), len(srcs), res.Failures[0])
		}
		for src, nodes := range res.PerSource {
			want := nodeName(expectedOwner(ids, src, filter.AffinityIP))
			if len(nodes) != 1 || nodes[want] != 1 {
				return fmt.Errorf("source %s answered by %v, want %s", src, nodes, want)
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("the farm does not serve: %v", err)
	}
	f.t.Logf("every source answered by its expected owner %s after the agents agreed (%d rounds)", time.Since(start).Round(time.Millisecond), rounds)
}

// pcDebugPcap starts, when PC_PCAP names a directory, a tcpdump of every
// TCP port 80 frame on the client's switch port into DIR/name.pcap, and
// returns the function that stops it.
func pcDebugPcap(l *lab.Lab, name string) func() {
	dir := os.Getenv("PC_PCAP")
	if dir == "" {
		return func() {}
	}
	_ = os.MkdirAll(dir, 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.Exec(ctx, l.Switch.NS, "tcpdump", "-i", l.Client.Port, "-n", "-U", "-s", "128", "-w", dir+"/"+name+".pcap", "tcp port 80")
	}()
	return func() {
		cancel()
		<-done
	}
}

// pcRunning lists the node numbers whose agent runs.
func (f *farm) pcRunning() []int {
	var out []int
	for i, p := range f.agents {
		if p != nil && !p.Exited() {
			out = append(out, i+1)
		}
	}
	return out
}

// pcWaitAll polls every running agent's status until check accepts all of
// them, or fails the test after d.
func (f *farm) pcWaitAll(d time.Duration, what string, check func(st console.Status) error) {
	f.t.Helper()
	err := lab.Poll(context.Background(), d, func() error {
		for _, i := range f.pcRunning() {
			st, err := f.status(i)
			if err != nil {
				return err
			}
			if err := check(st); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// pcWaitState waits until every running agent shows node `name` in `state`.
func (f *farm) pcWaitState(name, state string) {
	f.t.Helper()
	f.pcWaitAll(pcConverge, name+" "+state, func(st console.Status) error {
		for _, n := range st.Nodes {
			if n.Name == name {
				if n.State != state {
					return fmt.Errorf("%s is %s (buckets %d), want %s", name, n.State, n.Buckets, state)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not listed", name)
	})
}

// pcAct runs `farm ACTION NODE` through the API of node `via`.
func (f *farm) pcAct(via int, action, node string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := f.l.Exec(ctx, f.l.Node(via).NS, f.l.FarmBin(), action, node, "--config", f.l.AgentConfigPath(via))
	if err != nil {
		f.t.Fatalf("farm %s %s on web%d: %v: %s", action, node, via, err, out)
	}
}

// pcConntrack returns what node i's conntrack table holds for src (the
// evidence a failure report needs: state and mark of the flows).
func (f *farm) pcConntrack(i int, src netip.Addr) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fam := "ipv4"
	if src.Is6() {
		fam = "ipv6"
	}
	out, err := f.l.Exec(ctx, f.l.Node(i).NS, "conntrack", "-L", "-f", fam, "-p", "tcp", "-s", src.String())
	if err != nil {
		return fmt.Sprintf("conntrack: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// pcResetLike reports errors that mean the connection was torn down under a
// request (as opposed to a timeout).
func pcResetLike(err error) bool {
	s := err.Error()
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(s, "reset") || strings.Contains(s, "EOF") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "server closed idle connection")
}

// pcConn is one keep-alive client: one source address, one connection
// (MaxConnsPerHost 1), a request every pcLongInterval. A second dial means the
// first connection was lost.
type pcConn struct {
	src    netip.Addr
	url    string
	client *http.Client
	dials  atomic.Int32

	mu        sync.Mutex
	conn      net.Conn // the latest one dialled
	events    []string // later dials and connection errors, stamped
	retx      uint32   // TCP_INFO total_retrans of conn when the load stopped
	node      string   // who answered first
	moved     int      // answers from another node on the same connection
	ok, fails int
	resets    int
	errs      []string
	maxRTT    time.Duration
}

// pcStats is what the load saw in one phase.
type pcStats struct {
	newPer     map[string]int // new connections: answering node -> count
	newReqs    int
	newFails   int
	synRetrans int            // new connections whose SYN was retransmitted
	longPer    map[string]int // long-lived answers: node -> count
	longFails  int
}

// pcLoad runs the long-lived clients and the new-connection loop and labels
// what it sees with the current phase.
type pcLoad struct {
	t        *testing.T
	l        *lab.Lab
	long     []*pcConn
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopping atomic.Bool

	mu       sync.Mutex
	phase    string
	phases   []string
	phaseAt  []string // UTC start time of each phase, to match the agent logs
	byPhase  map[string]*pcStats
	newErrs  []string
	retrans  []string // sources and phases of SYN retransmissions
	longErrs []string
}

// pcStartLoad opens one keep-alive connection per longSrcs address, waits
// until each has been answered once, and starts the new-connection loop over
// newSrcs.
func pcStartLoad(t *testing.T, l *lab.Lab, longSrcs, newSrcs []netip.Addr) *pcLoad {
	t.Helper()
	// The test stops the load; the timeout only bounds a test that dies
	// without reaching its cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	ld := &pcLoad{t: t, l: l, cancel: cancel, byPhase: map[string]*pcStats{}}
	t.Cleanup(ld.stop)
	ld.setPhase("warm-up")
	for _, src := range longSrcs {
		lc := &pcConn{src: src, url: l.VIPURL(src)}
		base := l.DialContext(l.Client.NS, src)
		lc.client = &http.Client{
			Timeout: pcReqTimeout,
			Transport: &http.Transport{
				Proxy: nil,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					n := lc.dials.Add(1)
					c, err := base(ctx, network, addr)
					phase := ld.phaseNow()
					lc.mu.Lock()
					defer lc.mu.Unlock()
					if err != nil {
						lc.events = append(lc.events, fmt.Sprintf("%s [%s] dial %d failed: %v", pcStamp(), phase, n, err))
						return nil, err
					}
					if n > 1 {
						lc.events = append(lc.events, fmt.Sprintf("%s [%s] dial %d from %s", pcStamp(), phase, n, c.LocalAddr()))
					}
					lc.conn = c
					return &pcWatched{Conn: c, ld: ld, lc: lc}, nil
				},
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
			},
		}
		ld.long = append(ld.long, lc)
		ld.wg.Add(1)
		go ld.runLong(ctx, lc)
	}
	err := lab.Poll(context.Background(), 10*time.Second, func() error {
		for _, lc := range ld.long {
			lc.mu.Lock()
			ok := lc.ok
			lc.mu.Unlock()
			if ok == 0 {
				return fmt.Errorf("long-lived client %s not answered yet", lc.src)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	per := len(newSrcs) / pcNewWorkers
	for w := 0; w < pcNewWorkers && per > 0; w++ {
		srcs := newSrcs[w*per : (w+1)*per]
		if w == pcNewWorkers-1 {
			srcs = newSrcs[w*per:]
		}
		ld.wg.Add(1)
		go ld.runNew(ctx, srcs)
	}
	return ld
}

func (ld *pcLoad) setPhase(p string) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.phase = p
	ld.phases = append(ld.phases, p)
	ld.phaseAt = append(ld.phaseAt, pcStamp())
	ld.byPhase[p] = &pcStats{newPer: map[string]int{}, longPer: map[string]int{}}
}

func (ld *pcLoad) runLong(ctx context.Context, lc *pcConn) {
	defer ld.wg.Done()
	tick := time.NewTicker(pcLongInterval)
	defer tick.Stop()
	for {
		ld.mu.Lock()
		phase := ld.phase
		ld.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, pcReqTimeout)
		start := time.Now()
		body, err := lab.GetWith(rctx, lc.client, lc.url)
		rtt := time.Since(start)
		cancel()
		if ctx.Err() != nil {
			return // the load is stopping: not a failure of the farm
		}
		ld.mu.Lock()
		st := ld.byPhase[phase]
		lc.mu.Lock()
		if err != nil {
			lc.fails++
			st.longFails++
			if pcResetLike(err) {
				lc.resets++
			}
			msg := fmt.Sprintf("[%s] long %s (on %s, dial %d): %v", phase, lc.src, lc.node, lc.dials.Load(), err)
			lc.errs = append(lc.errs, msg)
			ld.longErrs = append(ld.longErrs, msg)
		} else {
			lc.ok++
			st.longPer[body]++
			if lc.node == "" {
				lc.node = body
			} else if body != lc.node {
				lc.moved++
			}
			lc.maxRTT = max(lc.maxRTT, rtt)
		}
		lc.mu.Unlock()
		ld.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (ld *pcLoad) runNew(ctx context.Context, srcs []netip.Addr) {
	defer ld.wg.Done()
	tick := time.NewTicker(pcNewInterval)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		src := srcs[k%len(srcs)]
		ld.mu.Lock()
		phase := ld.phase
		ld.mu.Unlock()
		body, retrans, err := ld.l.GetNew(ctx, ld.l.Client.NS, src, ld.l.VIPURL(src), pcReqTimeout)
		if ctx.Err() != nil {
			return
		}
		ld.mu.Lock()
		st := ld.byPhase[phase]
		st.newReqs++
		if err != nil {
			st.newFails++
			ld.newErrs = append(ld.newErrs, fmt.Sprintf("[%s] new %s: %v", phase, src, err))
		} else {
			st.newPer[body]++
		}
		if retrans > 0 {
			st.synRetrans++
			ld.retrans = append(ld.retrans, fmt.Sprintf("[%s] %s (answered by %q)", phase, src, body))
		}
		ld.mu.Unlock()
	}
}

// stop ends the load and waits for its goroutines; idempotent.
func (ld *pcLoad) stop() {
	if ld.stopping.Swap(true) {
		return
	}
	ld.cancel()
	ld.wg.Wait()
	for _, lc := range ld.long {
		lc.mu.Lock()
		if lc.conn != nil {
			if info, err := lab.TCPInfo(lc.conn); err == nil {
				lc.retx = info.Total_retrans
			}
		}
		lc.mu.Unlock()
		lc.client.CloseIdleConnections()
	}
}

func (ld *pcLoad) phaseNow() string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.phase
}

func pcStamp() string { return time.Now().UTC().Format("15:04:05.000") }

// pcWatched records the first read or write error of a long-lived
// connection (the transport may retry a GET on a new connection without
// surfacing it), with its time and phase, for the report.
type pcWatched struct {
	net.Conn
	ld   *pcLoad
	lc   *pcConn
	once sync.Once
}

func (w *pcWatched) note(op string, err error) {
	if err == nil || w.ld.stopping.Load() {
		return
	}
	w.once.Do(func() {
		phase := w.ld.phaseNow()
		w.lc.mu.Lock()
		w.lc.events = append(w.lc.events, fmt.Sprintf("%s [%s] %s on %s: %v", pcStamp(), phase, op, w.LocalAddr(), err))
		w.lc.mu.Unlock()
	})
}

func (w *pcWatched) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	w.note("read", err)
	return n, err
}

func (w *pcWatched) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	w.note("write", err)
	return n, err
}

// pcPause lets the load run for d in the current phase (load, not sync: the
// steps need new connections to land on every node in between).
func pcPause(d time.Duration) { time.Sleep(d) }

// report logs the per-phase table and the per-connection totals and returns
// the totals.
func (ld *pcLoad) report(nodes []string) (longReqs, longFails, reconnects, resets, moved, newReqs, newFails, synRetrans int) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-32s | new connections: %s fail synRetx | long-lived answers: %s fail\n",
		"start (UTC)", "phase", strings.Join(nodes, " "), strings.Join(nodes, " "))
	for k, p := range ld.phases {
		st := ld.byPhase[p]
		fmt.Fprintf(&b, "%s %-32s |", ld.phaseAt[k], p)
		for _, n := range nodes {
			fmt.Fprintf(&b, " %4d", st.newPer[n])
		}
		fmt.Fprintf(&b, " %4d %4d |", st.newFails, st.synRetrans)
		for _, n := range nodes {
			fmt.Fprintf(&b, " %4d", st.longPer[n])
		}
		fmt.Fprintf(&b, " %4d\n", st.longFails)
		newReqs += st.newReqs
		newFails += st.newFails
		synRetrans += st.synRetrans
	}
	perNode := map[string][]string{}
	for _, lc := range ld.long {
		lc.mu.Lock()
		longReqs += lc.ok + lc.fails
		longFails += lc.fails
		resets += lc.resets
		moved += lc.moved
		if d := int(lc.dials.Load()); d > 1 {
			reconnects += d - 1
		}
		rtx := lc.retx
		for _, e := range lc.events {
			ld.t.Logf("long-lived %s (on %s): %s", lc.src, lc.node, e)
		}
		perNode[lc.node] = append(perNode[lc.node], fmt.Sprintf("%s(dials=%d ok=%d fail=%d retx=%d maxRTT=%s)",
			lc.src, lc.dials.Load(), lc.ok, lc.fails, rtx, lc.maxRTT.Round(time.Millisecond)))
		lc.mu.Unlock()
	}
	ld.t.Logf("per phase (new connections answered per node, failures, SYN retransmissions; long-lived answers per node):\n%s", b.String())
	var keys []string
	for k := range perNode {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ld.t.Logf("long-lived connections on %q (%d): %s", k, len(perNode[k]), strings.Join(perNode[k], " "))
	}
	if len(ld.retrans) > 0 {
		ld.t.Logf("new connections with a retransmitted SYN (%d): %s", len(ld.retrans), strings.Join(ld.retrans, "; "))
	}
	for i, e := range ld.longErrs {
		if i == 20 {
			ld.t.Logf("... %d more long-lived errors", len(ld.longErrs)-20)
			break
		}
		ld.t.Logf("long-lived error: %s", e)
	}
	for i, e := range ld.newErrs {
		if i == 20 {
			ld.t.Logf("... %d more new-connection errors", len(ld.newErrs)-20)
			break
		}
		ld.t.Logf("new-connection error: %s", e)
	}
	return
}

// longOn counts the long-lived connections first answered by node.
func (ld *pcLoad) longOn(node string) int {
	n := 0
	for _, lc := range ld.long {
		lc.mu.Lock()
		if lc.node == node {
			n++
		}
		lc.mu.Unlock()
	}
	return n
}

// failedSources lists the long-lived sources that saw an error or a redial.
func (ld *pcLoad) failedSources() []netip.Addr {
	var out []netip.Addr
	for _, lc := range ld.long {
		lc.mu.Lock()
		if lc.fails > 0 || lc.dials.Load() > 1 {
			out = append(out, lc.src)
		}
		lc.mu.Unlock()
	}
	return out
}

// pcEvidence logs the conntrack entries of the failing long-lived sources on
// every running node.
func (f *farm) pcEvidence(ld *pcLoad) {
	srcs := ld.failedSources()
	for k, src := range srcs {
		if k == 5 {
			break
		}
		for _, i := range f.pcRunning() {
			f.t.Logf("conntrack on web%d for %s:\n%s", i, src, f.pcConntrack(i, src))
		}
	}
}

// pcSources returns client addresses [from, to) of each family,
// interleaved v4, v6, v4...
func pcSources(l *lab.Lab, from, to int) []netip.Addr {
	var out []netip.Addr
	for i := from; i < to && i < len(l.ClientAddrs4) && i < len(l.ClientAddrs6); i++ {
		out = append(out, l.ClientAddrs4[i], l.ClientAddrs6[i])
	}
	return out
}

// TestPlannedChanges drives every planned change (drain to its timeout,
// stop, start, a node joining, a weight change) under load: 50 keep-alive
// connections that must never fail or reconnect, ~50 new connections a
// second that must never fail, and no SYN answered by two nodes. It reports
// (does not assert) the new connections whose SYN was retransmitted: with
// the announced switch time (gossip.switch_lead, switch_margin) a planned
// move leaves a gap of the margin only, so there should be none.
func TestPlannedChanges(t *testing.T) {
	begin := time.Now()
	f := pcStartPartialFarm(t, lab.Options{Nodes: 4, RequestTimeout: pcReqTimeout}, 3, map[int]string{
		2: "[node]\ndrain_timeout = \"5s\"\n",
	})
	l := f.l
	f.pcWaitServing([]uint8{1, 2, 3}, pcSources(l, 0, 64))
	defer pcDebugPcap(l, "planned")()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	capt, err := l.StartCapture(cctx)
	if err != nil {
		t.Fatal(err)
	}
	ld := pcStartLoad(t, l, pcSources(l, 0, 25), pcSources(l, 25, 64))
	nodes := []string{"web1", "web2", "web3", "web4"}
	for _, n := range nodes[:3] {
		if ld.longOn(n) == 0 {
			t.Fatalf("no long-lived connection landed on %s: the drain would not be exercised", n)
		}
	}
	t.Logf("long-lived connections: web1=%d web2=%d web3=%d", ld.longOn("web1"), ld.longOn("web2"), ld.longOn("web3"))

	ld.setPhase("3 nodes up")
	pcPause(pcStepPause)

	// Drain: web2 keeps its long-lived flows, so only the timeout ends it.
	ld.setPhase("drain web2 (converging)")
	f.pcAct(1, "drain", "web2")
	f.pcWaitState("web2", "draining")
	pcPause(pcSwitchWait)
	ld.setPhase("web2 draining")
	f.pcWaitState("web2", "stopped")
	ld.setPhase("web2 stopped by drain timeout")
	pcPause(pcStepPause)

	ld.setPhase("start web2 (converging)")
	f.pcAct(3, "start", "web2")
	f.waitUp(3, pcConverge)
	ld.setPhase("web2 started")
	pcPause(pcStepPause)

	ld.setPhase("stop web2 (converging)")
	f.pcAct(2, "stop", "web2")
	f.pcWaitState("web2", "stopped")
	pcPause(pcSwitchWait)
	ld.setPhase("web2 stopped")
	pcPause(pcStepPause)

	ld.setPhase("start web2 again (converging)")
	f.pcAct(1, "start", "web2")
	f.waitUp(3, pcConverge)
	ld.setPhase("web2 started again")
	pcPause(pcStepPause)

	ld.setPhase("web4 joining (converging)")
	f.startAgent(4, "")
	f.waitUp(4, pcConverge)
	ld.setPhase("web4 joined")
	pcPause(pcStepPause)

	ld.setPhase("web3 weight 200 (converging)")
	if err := os.WriteFile(l.AgentConfigPath(3), []byte(l.NodeConfig(3, "[node]\nweight = 200\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.agents[2].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var shares string
	f.pcWaitAll(pcConverge, "web3 weight 200", func(st console.Status) error {
		var parts []string
		for _, n := range st.Nodes {
			parts = append(parts, fmt.Sprintf("%s=%s/w%d/%d", n.Name, n.State, n.Weight, n.Buckets))
			if n.Name == "web3" && n.Weight != 200 {
				return fmt.Errorf("web3 weight %d", n.Weight)
			}
		}
		s := strings.Join(parts, " ")
		if shares == "" || shares != s {
			prev := shares
			shares = s
			if prev != "" {
				return fmt.Errorf("shares changed: %s -> %s", prev, s)
			}
		}
		return nil
	})
	t.Logf("after the weight change: %s", shares)
	ld.setPhase("web3 weight 200")
	pcPause(pcStepPause)
	ld.stop()
	rep, err := capt.Stop()
	if err != nil {
		t.Errorf("capture: %v", err)
	}
	t.Logf("capture: %d SYN-ACKs by node %v, %d SYNs answered twice, %d dropped by the kernel", rep.SynAcks, rep.BySource, len(rep.Doubles), rep.KernelDropped)
	for k, d := range rep.Doubles {
		if k == 10 {
			break
		}
		t.Logf("SYN answered twice: %+v", d)
	}
	if len(rep.Doubles) > 0 {
		t.Errorf("%d SYNs were answered by two nodes", len(rep.Doubles))
	}

	// Every plan, planned switches included, must have reached the data
	// path: an engine that refuses them falls back to the planner's timer.
	for i := range nodes {
		b, err := os.ReadFile(l.AgentLogPath(i + 1))
		if err != nil {
			t.Errorf("web%d's log: %v", i+1, err)
			continue
		}
		log := string(b)
		t.Logf("web%d: %d planned switches set", i+1, strings.Count(log, "Planned switch set"))
		if n := strings.Count(log, "could not follow the plan"); n > 0 {
			t.Errorf("web%d: %d plans were not applied in full by the engine (see its log)", i+1, n)
		}
	}

	longReqs, longFails, reconnects, resets, moved, newReqs, newFails, synRetrans := ld.report(nodes)
	t.Logf("TOTAL long-lived: %d connections, %d requests, %d failed, %d reconnects, %d reset-like errors, %d answered by another node",
		len(ld.long), longReqs, longFails, reconnects, resets, moved)
	t.Logf("TOTAL new connections: %d requests, %d failed, %d with a retransmitted SYN; test ran %s",
		newReqs, newFails, synRetrans, time.Since(begin).Round(time.Second))
	if longFails > 0 || reconnects > 0 || resets > 0 || moved > 0 {
		t.Errorf("long-lived connections broke: %d failed requests, %d reconnects, %d reset-like errors, %d moved", longFails, reconnects, resets, moved)
		f.pcEvidence(ld)
	}
	if newFails > 0 {
		t.Errorf("%d of %d new-connection requests failed", newFails, newReqs)
	}
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for _, p := range []string{"web2 draining", "web2 stopped by drain timeout", "web2 stopped"} {
		if n := ld.byPhase[p].newPer["web2"]; n > 0 {
			t.Errorf("phase %q: web2 accepted %d new connections while out of the farm", p, n)
		}
	}
	if ld.byPhase["web2 stopped by drain timeout"].longPer["web2"] == 0 {
		t.Errorf("web2's long-lived flows got no answer after its drain timed out")
	}
	for _, n := range nodes {
		if ld.byPhase["web4 joined"].newPer[n] == 0 {
			t.Errorf("phase \"web4 joined\": %s answered no new connection", n)
		}
	}
}

// TestAgentRestartKeepsFlows restarts web2's agent gracefully while
// keep-alive connections on every node keep sending requests: the
// connections on web2 must survive the restart (their conntrack entries keep
// the mark; the restarted agent accepts them again).
func TestAgentRestartKeepsFlows(t *testing.T) {
	begin := time.Now()
	f := pcStartPartialFarm(t, lab.Options{Nodes: 3, RequestTimeout: pcReqTimeout}, 3, nil)
	l := f.l
	ids := []uint8{1, 2, 3}
	want := map[uint8]int{1: 7, 2: 7, 3: 6}
	var srcs, others []netip.Addr
	expect := map[netip.Addr]string{}
	for _, src := range pcSources(l, 0, 64) {
		o := expectedOwner(ids, src, filter.AffinityIP)
		if want[o] > 0 {
			want[o]--
			srcs = append(srcs, src)
			expect[src] = nodeName(o)
		} else {
			others = append(others, src)
		}
	}
	f.pcWaitServing(ids, pcSources(l, 0, 64))
	defer pcDebugPcap(l, "restart")()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	capt, err := l.StartCapture(cctx)
	if err != nil {
		t.Fatal(err)
	}
	// New connections from the other sources are logged, not asserted: an
	// agent restart is not one of the planned changes the contract covers.
	ld := pcStartLoad(t, l, srcs, others)
	for _, lc := range ld.long {
		lc.mu.Lock()
		if lc.node != expect[lc.src] {
			t.Errorf("%s answered by %s, expected owner %s", lc.src, lc.node, expect[lc.src])
		}
		lc.mu.Unlock()
	}
	t.Logf("long-lived connections: web1=%d web2=%d web3=%d", ld.longOn("web1"), ld.longOn("web2"), ld.longOn("web3"))
	ld.setPhase("3 nodes up")
	pcPause(2 * time.Second)

	stopAt := time.Now()
	if err := f.agents[1].Stop(); err != nil {
		t.Errorf("stopping web2's agent: %v", err)
	}
	ld.setPhase("web2 agent stopped")
	stopped := time.Since(stopAt)
	f.startAgent(2, "")
	f.waitUp(3, pcConverge)
	ld.setPhase("web2 agent restarted")
	t.Logf("web2's agent took %s to stop; back up %s after the stop began", stopped.Round(time.Millisecond), time.Since(stopAt).Round(time.Millisecond))
	pcPause(3 * time.Second)
	ld.stop()

	longReqs, longFails, reconnects, resets, moved, newReqs, newFails, synRetrans := ld.report([]string{"web1", "web2", "web3"})
	rep, err := capt.Stop()
	if err != nil {
		t.Errorf("capture: %v", err)
	}
	t.Logf("new connections (not asserted): %d requests, %d failed, %d with a retransmitted SYN; capture: %d SYN-ACKs by node %v, %d SYNs answered twice",
		newReqs, newFails, synRetrans, rep.SynAcks, rep.BySource, len(rep.Doubles))
	for k, d := range rep.Doubles {
		if k == 10 {
			break
		}
		t.Logf("SYN answered twice: %+v", d)
	}
	t.Logf("TOTAL long-lived: %d connections, %d requests, %d failed, %d reconnects, %d reset-like errors, %d answered by another node; test ran %s",
		len(ld.long), longReqs, longFails, reconnects, resets, moved, time.Since(begin).Round(time.Second))
	if longFails > 0 || reconnects > 0 || resets > 0 || moved > 0 {
		t.Errorf("long-lived connections broke across the agent restart: %d failed requests, %d reconnects, %d reset-like errors, %d moved",
			longFails, reconnects, resets, moved)
		f.pcEvidence(ld)
	}
}
