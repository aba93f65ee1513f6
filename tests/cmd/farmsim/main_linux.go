// Command farmsim simulates a farm larger than this machine can host as
// agents (issue 9, part 8): -nodes real serf memberships (farm/member, set up
// as the agent sets them up, with the config defaults for the failure
// detector unless flags say otherwise) in one process over loopback, each on
// its own port, sharing a gossip key. It waits until every node computes the
// same owner table, then -kills times stops one node abruptly
// (Membership.Kill: no leave message, as when a host crashes) and measures
// the time until every remaining node has published the table of the
// remaining members: when the first one had it (detection) and when the last
// one did (agreement). Between start-up and the kills it measures, over
// -window, the gossip traffic per node and the CPU of the whole process.
// With -info (default 2s, as the agent's detail loop) every node also asks
// all the others for their info, as agents do.
//
// Gossip traffic is counted in two ways: memberlist's own counters of the
// bytes it hands to its UDP and TCP sockets (encrypted payload, through a
// go-metrics sink, averaged over the nodes, which all do the same work), and,
// with -netns, the loopback interface's transmit counter in a network
// namespace of its own (wire bytes with IP/UDP/TCP headers; needs root).
//
// Read the results with the process in mind: every node shares this
// process's cores, heap and scheduler, so a stall (GC, another program on the
// machine) delays every node's probes at once, which a farm of separate hosts
// never sees. The table prints what bounds the result: the cores used, the
// process's CPU, how late a 10 ms timer fires in it (against the probe
// timeout), the machine's load average, memberlist's state changes and the
// live peers some node saw failed (false alarms). If the nodes never agree
// at start-up, it prints the table without kills and exits 1.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metrics "github.com/hashicorp/go-metrics"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/farm/member"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

type options struct {
	nodes         int
	kills         int
	duration      time.Duration
	window        time.Duration
	pause         time.Duration
	probeInterval time.Duration
	gossipEvery   time.Duration
	probeTimeout  time.Duration
	suspicionMult int
	seed          uint64
	netns         bool
	verbose       bool
	cpuProfile    string
	info          time.Duration
	stagger       time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 64, "memberships to run")
	flag.IntVar(&o.kills, "kills", 10, "nodes to kill, one after another")
	flag.DurationVar(&o.duration, "duration", 4*time.Minute, "give up (and exit 1) after this long")
	flag.DurationVar(&o.window, "window", 20*time.Second, "steady-state window for gossip traffic and CPU")
	flag.DurationVar(&o.pause, "pause", 3*time.Second, "quiet time before each kill")
	flag.DurationVar(&o.probeInterval, "probe-interval", config.DefaultProbeInterval, "gossip.probe_interval")
	flag.DurationVar(&o.gossipEvery, "gossip-interval", member.DefaultGossipInterval, "memberlist's gossip tick")
	flag.DurationVar(&o.probeTimeout, "probe-timeout", config.DefaultProbeTimeout, "gossip.probe_timeout")
	flag.IntVar(&o.suspicionMult, "suspicion-mult", config.DefaultSuspicionMult, "gossip.suspicion_mult")
	flag.Uint64Var(&o.seed, "seed", 1, "seed for node ids and kill order")
	flag.BoolVar(&o.netns, "netns", false, "run in a new network namespace (root) and also report loopback wire bytes")
	flag.DurationVar(&o.stagger, "stagger", 50*time.Millisecond, "pause between starting two nodes")
	flag.DurationVar(&o.info, "info", 2*time.Second, "ask every node for its info this often, as the agent's detail loop does (0: never)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.BoolVar(&o.verbose, "v", false, "print each kill as it happens, and the agent's warnings")
	flag.Parse()
	if o.nodes < 2 || o.nodes > table.MaxID || o.kills < 0 || o.kills > o.nodes-1 {
		fmt.Fprintf(os.Stderr, "farmsim: -nodes must be 2..%d and -kills 0..nodes-1\n", table.MaxID)
		os.Exit(2)
	}
	if o.netns && os.Getenv(inNetnsEnv) == "" {
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "farmsim: -netns needs root: running in this namespace, without the loopback wire bytes")
			o.netns = false
		} else {
			os.Exit(reexecInNetns())
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "farmsim:", err)
		os.Exit(1)
	}
}

const inNetnsEnv = "FARMSIM_IN_NETNS"

// reexecInNetns runs this command again as a child in a new network
// namespace (all of its threads, unlike unshare from a running Go program).
func reexecInNetns() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "farmsim: -netns needs root:", err)
		return 1
	}
	return 0
}

// simNode is one membership and the last view it published.
type simNode struct {
	name string
	id   uint8
	bind string
	m    *member.Membership
	done chan error

	dead atomic.Bool // killed
	farm *sim

	mu      sync.Mutex
	table   table.Table
	has     bool
	joined  bool
	changed time.Time // when the table last changed
	peers   map[string]peerSeen
	nodes   []view.Node // the last view's
	runErr  error       // why Run returned early, if it did
}

// peerSeen is what a node last saw of a peer, to count false alarms.
type peerSeen struct{ alive bool }

// sim is what the nodes share: who is really dead, and the false alarms:
// live peers declared failed by some node (one count per observer and
// peer). Suspicions are counted from memberlist's own counters: the views'
// Suspect flag cannot be trusted (see the report of issue 9).
type sim struct {
	byName     map[string]*simNode
	falseDeath atomic.Int64
}

func (n *simNode) onView(v view.View) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if v.Table != nil && (!n.has || *v.Table != n.table) {
		n.table, n.has, n.changed = *v.Table, true, now
	}
	n.joined = v.Joined
	n.nodes = v.Nodes
	if n.peers == nil {
		n.peers = map[string]peerSeen{}
	}
	for _, p := range v.Nodes {
		peer := n.farm.byName[p.Name]
		if peer == nil || peer == n {
			continue
		}
		prev, seen := n.peers[p.Name]
		n.peers[p.Name] = peerSeen{alive: p.Alive}
		if !seen || peer.dead.Load() {
			continue
		}
		if !p.Alive && prev.alive {
			n.farm.falseDeath.Add(1)
		}
	}
}

// agreed reports whether n has published want (and knows the farm), and when
// its table last changed.
func (n *simNode) agreed(want *table.Table) (bool, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.has && n.joined && n.table == *want, n.changed
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	if o.netns {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("bring lo up in the new namespace: %v: %s", err, out)
		}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sink := newByteSink()
	mc := metrics.DefaultConfig("")
	mc.EnableHostname, mc.EnableRuntimeMetrics, mc.EnableServiceLabel = false, false, false
	if _, err := metrics.NewGlobal(mc, sink); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	keyText, err := config.NewKey()
	if err != nil {
		return err
	}
	key, err := base64.StdEncoding.DecodeString(keyText)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(o.seed, 9))
	ids := r.Perm(table.MaxID)[:o.nodes]
	nodes := make([]*simNode, o.nodes)
	farm := &sim{byName: map[string]*simNode{}}
	log := slog.New(slog.DiscardHandler)
	if o.verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	port := 20000
	for i := range nodes {
		var err error
		if port, err = freePort(port); err != nil {
			return err
		}
		nodes[i] = &simNode{name: fmt.Sprintf("sim%03d", i), id: uint8(ids[i] + 1), bind: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan error, 1), farm: farm}
		port++
		farm.byName[nodes[i].name] = nodes[i]
	}
	seeds := []string{nodes[0].bind, nodes[1].bind}
	for i, n := range nodes {
		var join []string
		for _, s := range seeds {
			if s != n.bind {
				join = append(join, s)
			}
		}
		n.m = member.New(member.Config{
			Name: n.name, ID: n.id, Weight: 100, State: view.StateUp,
			Bind: n.bind, Join: join, Key: key, Bootstrap: i == 0,
			RetryInterval: 200 * time.Millisecond,
			ProbeInterval: o.probeInterval, ProbeTimeout: o.probeTimeout, SuspicionMult: o.suspicionMult, GossipInterval: o.gossipEvery,
			OnAction: func(string) error { return nil },
			OnInfo:   func() []byte { return infoPayload },
		}, log, n.onView)
	}
	var runCtx context.Context
	runCtx, stopAll := context.WithCancel(context.Background())
	defer func() {
		// Kill the rest abruptly too: 64 graceful leaves only slow the exit.
		for _, n := range nodes {
			if !n.dead.Swap(true) { // dead: its Run's error is expected
				_ = n.m.Kill()
			}
		}
		stopAll()
		for _, n := range nodes {
			select {
			case <-n.done:
			case <-time.After(10 * time.Second):
			}
		}
	}()
	started := time.Now()
	for _, n := range nodes {
		go func() {
			err := n.m.Run(runCtx)
			if err != nil && runCtx.Err() == nil && !n.dead.Load() {
				n.mu.Lock()
				n.runErr = err
				n.mu.Unlock()
				fmt.Fprintf(os.Stderr, "farmsim: %s stopped: %v\n", n.name, err)
			}
			n.done <- err
		}()
		time.Sleep(o.stagger) // a real farm does not start in one instant either
	}
	if o.info > 0 {
		for _, n := range nodes {
			go n.infoLoop(runCtx, o.info)
		}
	}

	alive := func() []*simNode {
		var out []*simNode
		for _, n := range nodes {
			if !n.dead.Load() {
				out = append(out, n)
			}
		}
		return out
	}
	expected := func(ns []*simNode) *table.Table {
		ms := make([]table.Member, len(ns))
		for i, n := range ns {
			ms[i] = table.Member{ID: n.id, Weight: 100}
		}
		return table.Compute(ms)
	}
	// waitAgreed polls until every node of ns has published want; it returns
	// the first and last times their tables changed to it.
	waitAgreed := func(ns []*simNode, want *table.Table, limit time.Duration) (first, last time.Time, err error) {
		deadline := time.Now().Add(limit)
		for {
			all := true
			first, last = time.Time{}, time.Time{}
			for _, n := range ns {
				ok, at := n.agreed(want)
				if !ok {
					all = false
					break
				}
				if first.IsZero() || at.Before(first) {
					first = at
				}
				if at.After(last) {
					last = at
				}
			}
			if all {
				return first, last, nil
			}
			if time.Now().After(deadline) {
				return first, last, fmt.Errorf("nodes did not agree within %v: %s", limit, disagreement(ns, want))
			}
			select {
			case <-ctx.Done():
				return first, last, fmt.Errorf("-duration %v exceeded", o.duration)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	res := result{o: o, procs: runtime.GOMAXPROCS(0), cpus: runtime.NumCPU()}
	late := &latenessProbe{}
	go late.run(runCtx)
	_, last, startErr := waitAgreed(nodes, expected(nodes), startLimit)
	if ctx.Err() != nil {
		return startErr
	}
	if startErr != nil {
		// Measure and print what happens anyway: it says why.
		fmt.Fprintln(os.Stderr, "farmsim: start-up:", startErr)
		res.converge = -1
	} else {
		res.converge = last.Sub(started)
	}

	// Steady state: no change, only probes, gossip and push-pull.
	time.Sleep(o.pause)
	res.load0 = loadAvg()
	late.reset()
	fd0 := farm.falseDeath.Load()
	udpErr0 := udpErrors()
	ev0 := sink.eventCounts()
	s0, lo0, cpu0, t0 := sink.snapshot(), loTxBytes(), cpuTime(), time.Now()
	select {
	case <-ctx.Done():
		return fmt.Errorf("-duration %v exceeded", o.duration)
	case <-time.After(o.window):
	}
	s1, lo1, cpu1, t1 := sink.snapshot(), loTxBytes(), cpuTime(), time.Now()
	secs := t1.Sub(t0).Seconds()
	per := secs * float64(o.nodes)
	res.udpBytes = float64(s1.udpBytes-s0.udpBytes) / per
	res.udpPackets = float64(s1.udpPackets-s0.udpPackets) / per
	res.tcpBytes = float64(s1.tcpBytes-s0.tcpBytes) / per
	if lo0 >= 0 && lo1 >= 0 && o.netns {
		res.loBytes = float64(lo1-lo0) / per
	} else {
		res.loBytes = -1
	}
	res.cpuSteady = (cpu1 - cpu0).Seconds() / secs * 100
	res.falseDeathSteady = farm.falseDeath.Load() - fd0
	res.lateSteady = late.reset()
	ev1 := sink.eventCounts()
	res.eventsSteady = diffCounts(ev1, ev0)
	fd0 = farm.falseDeath.Load()

	cpuK0, tK0 := cpuTime(), time.Now()
	kills := o.kills
	if startErr != nil {
		kills = 0
	}
	for k := 0; k < kills; k++ {
		time.Sleep(o.pause)
		live := alive()
		victim := live[r.IntN(len(live))]
		rest := slices.DeleteFunc(slices.Clone(live), func(n *simNode) bool { return n == victim })
		want := expected(rest)
		victim.dead.Store(true)
		at := time.Now()
		if err := victim.m.Kill(); err != nil {
			return fmt.Errorf("kill %s: %w", victim.name, err)
		}
		kr := killResult{name: victim.name, id: victim.id, left: len(rest)}
		first, last, err := waitAgreed(rest, want, killLimit)
		switch {
		case ctx.Err() != nil:
			return err
		case err != nil:
			// Counted, not fatal: the table shows how often it happens.
			kr.first, kr.all, kr.timedOut = killLimit, killLimit, true
			fmt.Fprintf(os.Stderr, "farmsim: kill %d (%s, id %d): %v\n", k+1, victim.name, victim.id, err)
		default:
			kr.first, kr.all = first.Sub(at), last.Sub(at)
		}
		res.kills = append(res.kills, kr)
		if o.verbose {
			fmt.Fprintf(os.Stderr, "farmsim: kill %d: %s (id %d): first %v, all %v\n", k+1, victim.name, victim.id, kr.first.Round(time.Millisecond), kr.all.Round(time.Millisecond))
		}
	}
	res.cpuKills = (cpuTime() - cpuK0).Seconds() / time.Since(tK0).Seconds() * 100
	res.falseDeathKills = farm.falseDeath.Load() - fd0
	res.lateKills = late.reset()
	res.load1 = loadAvg()
	res.eventsKills = diffCounts(sink.eventCounts(), ev1)
	if o.netns {
		res.udpErrors = udpErrors() - udpErr0
	} else {
		res.udpErrors = -1
	}
	res.print(os.Stdout)
	if startErr != nil {
		return errors.New("the nodes never agreed on the table, so nothing was killed")
	}
	return nil
}

// startLimit bounds the wait for the first agreement of all nodes.
const startLimit = 90 * time.Second

// infoPayload is the size of an agent's answer to an info query (flows, one
// checker, phase, serving; see agent/detail.go).
var infoPayload = []byte(`{"f":1234,"c":[{"n":"web","y":"http","s":"passing","t":1764576000}],"p":"running","v":true,"t":1764576000}`)

// infoLoop asks the farm for every node's info, as the agent's detail loop
// does, until ctx ends or the node is killed.
func (n *simNode) infoLoop(ctx context.Context, every time.Duration) {
	// Spread the nodes over the period, as agents started at different
	// times are.
	select {
	case <-ctx.Done():
		return
	case <-time.After(rand.N(every)):
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !n.dead.Load() {
		_, _ = n.m.Info(ctx, time.Second)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// disagreement says how many of ns have published want and what the others
// see, for an error message.
func disagreement(ns []*simNode, want *table.Table) string {
	ok := 0
	var others []string
	for _, n := range ns {
		if a, _ := n.agreed(want); a {
			ok++
			continue
		}
		n.mu.Lock()
		owners := map[uint8]bool{}
		for _, id := range n.table {
			owners[id] = true
		}
		alive := 0
		for _, p := range n.peers {
			if p.alive {
				alive++
			}
		}
		if len(others) < 5 {
			others = append(others, fmt.Sprintf("%s: joined %v, %d owners, sees %d peers alive", n.name, n.joined, len(owners), alive))
		}
		n.mu.Unlock()
	}
	detail := ""
	for _, n := range ns {
		if a, _ := n.agreed(want); a {
			continue
		}
		n.mu.Lock()
		var bad []string
		for _, p := range n.nodes {
			if p.Name == n.name {
				continue
			}
			if !p.Alive || p.Left {
				bad = append(bad, fmt.Sprintf("%s(alive %v left %v)", p.Name, p.Alive, p.Left))
			}
		}
		known := len(n.nodes)
		n.mu.Unlock()
		detail = fmt.Sprintf("; %s knows %d members, not alive: %s", n.name, known, strings.Join(bad, " "))
		break
	}
	return fmt.Sprintf("%d of %d agree; %s%s%s", ok, len(ns), strings.Join(others, "; "), detail, unknown(ns))
}

// unknown names the nodes that some live node does not know at all, with
// how many nodes miss each and what the unknown node itself sees: a join
// the others never heard of looks different from a node that lost them.
func unknown(ns []*simNode) string {
	missing := map[string]int{}
	for _, n := range ns {
		n.mu.Lock()
		if len(n.nodes) < 2 { // knows nobody: says nothing about the others
			n.mu.Unlock()
			continue
		}
		known := map[string]bool{n.name: true}
		for _, p := range n.nodes {
			known[p.Name] = true
		}
		n.mu.Unlock()
		for _, o := range ns {
			if !known[o.name] {
				missing[o.name]++
			}
		}
	}
	var out []string
	for _, o := range ns {
		c, ok := missing[o.name]
		if !ok {
			continue
		}
		o.mu.Lock()
		why := ""
		if o.runErr != nil {
			why = ", stopped: " + o.runErr.Error()
		}
		out = append(out, fmt.Sprintf("%s unknown to %d nodes (it knows %d members, joined %v%s)", o.name, c, len(o.nodes), o.joined, why))
		o.mu.Unlock()
	}
	if len(out) == 0 {
		return ""
	}
	return "; " + strings.Join(out, "; ")
}

// killLimit bounds the wait for agreement after a kill.
const killLimit = 20 * time.Second

type killResult struct {
	name       string
	id         uint8
	left       int
	first, all time.Duration
	timedOut   bool // no agreement within killLimit: first and all are killLimit
}

type result struct {
	o                    options
	procs, cpus          int
	converge             time.Duration
	udpBytes, udpPackets float64
	tcpBytes, loBytes    float64
	cpuSteady, cpuKills  float64
	kills                []killResult
	falseDeathSteady     int64
	falseDeathKills      int64
	lateSteady           lateness
	lateKills            lateness
	load0, load1         string
	udpErrors            int64
	eventsSteady         map[string]int64
	eventsKills          map[string]int64
}

func (r *result) print(w *os.File) {
	o := r.o
	row := func(k, v string) { fmt.Fprintf(w, "%-46s %s\n", k, v) }
	fmt.Fprintf(w, "farmsim: %d memberships in one process over loopback, %d kills (seed %d)\n", o.nodes, len(r.kills), o.seed)
	row("cores (GOMAXPROCS / NumCPU)", fmt.Sprintf("%d / %d", r.procs, r.cpus))
	row("probe interval / timeout / suspicion mult / gossip tick", fmt.Sprintf("%v / %v / %d / %v", o.probeInterval, o.probeTimeout, o.suspicionMult, o.gossipEvery))
	if o.info > 0 {
		row("info query (agent's detail loop) every", o.info.String())
	} else {
		row("info query (agent's detail loop) every", "never (-info 0)")
	}
	if r.converge < 0 {
		row("start-up: all agree on the table", fmt.Sprintf("never within %v (one node started every %v)", startLimit, o.stagger))
	} else {
		row("start-up: all agree on the table", fmt.Sprintf("%s after the first start (one node every %v)", r.converge.Round(time.Millisecond), o.stagger))
	}
	row("gossip sent per node, UDP (memberlist)", fmt.Sprintf("%.0f B/s in %.1f packets/s", r.udpBytes, r.udpPackets))
	row("gossip sent per node, TCP push-pull", fmt.Sprintf("%.0f B/s", r.tcpBytes))
	row("gossip per node, UDP+TCP + 28 B/UDP header", fmt.Sprintf("%.0f B/s", r.udpBytes+r.tcpBytes+28*r.udpPackets))
	if r.loBytes >= 0 {
		row("loopback tx per node (netns, wire bytes)", fmt.Sprintf("%.0f B/s", r.loBytes))
	} else {
		row("loopback tx per node (netns, wire bytes)", "- (run with -netns as root)")
	}
	row("process CPU, steady (all nodes)", fmt.Sprintf("%.0f%% of a core = %.2f%% per node", r.cpuSteady, r.cpuSteady/float64(o.nodes)))
	if len(r.kills) > 0 {
		row("process CPU, during kills", fmt.Sprintf("%.0f%% of a core", r.cpuKills))
	}
	row("machine load average (before / after)", r.load0+" / "+r.load1)
	if r.udpErrors >= 0 {
		row("UDP receive errors (netns, window + kills)", strconv.FormatInt(r.udpErrors, 10))
	}
	row("timer lateness in this process, steady", r.lateSteady.String())
	if len(r.kills) > 0 {
		row("timer lateness in this process, kills", r.lateKills.String())
	}
	row("live peers seen failed, steady / kills", fmt.Sprintf("%d / %d (observer x peer)", r.falseDeathSteady, r.falseDeathKills))
	row("memberlist state changes, steady", formatCounts(r.eventsSteady))
	if len(r.kills) > 0 {
		row("memberlist state changes, during kills", formatCounts(r.eventsKills))
	}
	if len(r.kills) == 0 {
		return
	}
	var firsts, alls []time.Duration
	var list []string
	timeouts := 0
	for _, k := range r.kills {
		firsts = append(firsts, k.first)
		alls = append(alls, k.all)
		if k.timedOut {
			timeouts++
			list = append(list, ">"+killLimit.String())
			continue
		}
		list = append(list, k.all.Round(time.Millisecond).String())
	}
	p50 := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		if len(d)%2 == 1 {
			return d[len(d)/2]
		}
		return (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	row("kill -> first node has the new table", fmt.Sprintf("p50 %s, max %s", ms(p50(firsts)), ms(slices.Max(firsts))))
	row("kill -> all remaining agree", fmt.Sprintf("p50 %s, max %s", ms(p50(alls)), ms(slices.Max(alls))))
	row("each kill (all agree)", strings.Join(list, " "))
	row("kills without agreement within "+killLimit.String(), strconv.Itoa(timeouts))
	row("nodes left after the kills", strconv.Itoa(r.kills[len(r.kills)-1].left))
}

// latenessProbe measures how late a 10 ms timer fires in this process: the
// scheduling delay every node's probes and acks suffer too. On a shared
// machine it says whether a failure-detector timeout of tens of
// milliseconds can hold at all.
type latenessProbe struct {
	mu      sync.Mutex
	samples []time.Duration
}

type lateness struct {
	p50, p99, max time.Duration
	n             int
}

func (l lateness) String() string {
	if l.n == 0 {
		return "-"
	}
	ms := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s, p99 %s, max %s (10 ms timer, %d samples)", ms(l.p50), ms(l.p99), ms(l.max), l.n)
}

func (p *latenessProbe) run(ctx context.Context) {
	const every = 10 * time.Millisecond
	for {
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		d := time.Since(t0) - every
		p.mu.Lock()
		p.samples = append(p.samples, d)
		p.mu.Unlock()
	}
}

// reset returns the lateness since the last reset and starts over.
func (p *latenessProbe) reset() lateness {
	p.mu.Lock()
	s := p.samples
	p.samples = nil
	p.mu.Unlock()
	if len(s) == 0 {
		return lateness{}
	}
	slices.Sort(s)
	return lateness{p50: s[len(s)/2], p99: s[len(s)*99/100], max: s[len(s)-1], n: len(s)}
}

func diffCounts(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// formatCounts prints memberlist's counters summed over all nodes: msg.alive,
// msg.suspect and msg.dead count state changes applied by some node,
// degraded.* the probes and suspicions Lifeguard slowed down.
func formatCounts(c map[string]int64) string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// freePort finds a port free for both TCP and UDP on loopback (serf uses
// both), at or above from and below the kernel's ephemeral range. A port
// the kernel picked for "port 0" came from that range, and the nodes
// started first dial TCP (push-pull) from ephemeral ports while the later
// ones are still waiting to bind theirs: one of 64 found its port taken
// now and then and never joined (the start-up that "did not agree").
func freePort(from int) (int, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	for port := from; port < lo; port++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP on 127.0.0.1 between %d and the ephemeral range (%d)", from, lo)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// udpErrors is the UDP InErrors counter of this network namespace (receive
// buffer overflows among them), -1 if unknown.
func udpErrors() int64 {
	b, err := os.ReadFile("/proc/self/net/snmp")
	if err != nil {
		return -1
	}
	var head []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == "InErrors" && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// loTxBytes is the loopback interface's transmit byte counter in this
// network namespace, -1 if unknown.
func loTxBytes() int64 {
	b, err := os.ReadFile("/proc/self/net/dev")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			return -1
		}
		v, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}

// byteSink is a go-metrics sink that keeps only memberlist's sent-bytes
// counters, exactly (integers, not float aggregates per interval).
type byteSink struct {
	udpBytes, udpPackets, tcpBytes atomic.Int64

	mu     sync.Mutex
	events map[string]int64 // memberlist.msg.* and memberlist.degraded.* counts
}

type sinkSnapshot struct{ udpBytes, udpPackets, tcpBytes int64 }

func newByteSink() *byteSink { return &byteSink{events: map[string]int64{}} }

// eventCounts returns the counts of memberlist's state messages so far.
func (s *byteSink) eventCounts() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.events))
	for k, v := range s.events {
		out[k] = v
	}
	return out
}

func (s *byteSink) snapshot() sinkSnapshot {
	return sinkSnapshot{s.udpBytes.Load(), s.udpPackets.Load(), s.tcpBytes.Load()}
}

func (s *byteSink) count(key []string, val float32) {
	if len(key) < 3 || key[len(key)-3] != "memberlist" {
		return
	}
	if k := key[len(key)-2]; k == "msg" || k == "degraded" {
		s.mu.Lock()
		s.events[k+"."+key[len(key)-1]]++
		s.mu.Unlock()
		return
	}
	if key[len(key)-1] != "sent" {
		return
	}
	switch key[len(key)-2] {
	case "udp":
		s.udpBytes.Add(int64(val))
		s.udpPackets.Add(1)
	case "tcp":
		s.tcpBytes.Add(int64(val))
	}
}

func (s *byteSink) IncrCounter(key []string, val float32) { s.count(key, val) }
func (s *byteSink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	s.count(key, val)
}
func (s *byteSink) SetGauge([]string, float32)                                     {}
func (s *byteSink) SetGaugeWithLabels([]string, float32, []metrics.Label)          {}
func (s *byteSink) SetPrecisionGauge([]string, float64)                            {}
func (s *byteSink) SetPrecisionGaugeWithLabels([]string, float64, []metrics.Label) {}
func (s *byteSink) EmitKey([]string, float32)                                      {}
func (s *byteSink) AddSample([]string, float32)                                    {}
func (s *byteSink) AddSampleWithLabels([]string, float32, []metrics.Label)         {}
