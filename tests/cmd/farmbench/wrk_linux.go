package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// The wrk cases. Every case sends the same wrk load to the VIP; they
// differ in what answers it.
const (
	caseBaseline = "baseline" // 1 node, VIP added by hand, nginx, no agent
	caseIP       = "ip"       // 3-node farm, affinity ip, one wrk (one source)
	caseIPPort   = "ip-port"  // 3-node farm, affinity ip-port, one wrk
	caseIPMulti  = "ip-multi" // the ip farm, several wrk from sources owned by different nodes
)

var allCases = []string{caseBaseline, caseIP, caseIPPort, caseIPMulti}

var wrkModes = []string{"keep-alive", "close"}

// wrkReport is the result of `farmbench wrk`.
type wrkReport struct {
	Machine  machine      `json:"machine"`
	Command  string       `json:"wrk_command"`
	Duration string       `json:"duration"`
	Runs     int          `json:"runs"`
	Cases    []*wrkCase   `json:"cases"`
	Queues   []queueFinal `json:"queues_after_run"`
	Notes    []string     `json:"notes,omitempty"`
}

// wrkCase is one row group of the table: a lab, its client sources and the
// two modes.
type wrkCase struct {
	Name    string       `json:"name"`
	Desc    string       `json:"description"`
	Nodes   int          `json:"nodes"`
	Sources []string     `json:"sources"`
	Owners  []string     `json:"owners"` // node owning each source (farm cases)
	Modes   []*wrkResult `json:"modes"`

	lab  *lab.Lab
	farm *farm // nil for the baseline
	uids []int // setpriv uid of each source's wrk (uid routing picks the source)
}

// wrkResult is one (case, mode): every run and the medians.
type wrkResult struct {
	Mode string `json:"mode"`
	// Runs holds each run (several wrk processes summed for ip-multi).
	Runs []wrkRun `json:"runs"`
	// ReqPerSec is the median over runs; Ratio is ReqPerSec over the
	// baseline's in the same mode.
	ReqPerSec float64 `json:"req_per_sec_median"`
	Ratio     float64 `json:"ratio_to_baseline,omitempty"`
	LatP50    float64 `json:"latency_p50_ms_median"`
	LatP99    float64 `json:"latency_p99_ms_median"`
	// Errors sums wrk's socket errors and bad statuses over the runs.
	Errors int64 `json:"errors"`
	// SynRetrans sums the client's TCPSynRetrans over the runs: SYNs that
	// got no answer within the retransmission timeout (dropped somewhere).
	SynRetrans int64 `json:"client_syn_retrans"`
	// ConnsPerNode sums each node's Tcp PassiveOpens over the runs: who
	// accepted the connections.
	ConnsPerNode map[string]int64 `json:"conns_per_node"`
	// Queues sums each node's NFQUEUE counter deltas over the runs.
	Queues map[string]nfQueue `json:"queues,omitempty"`
	// AgentCPU sums each agent's CPU time (user+system, in seconds) over
	// the runs. System time includes the kernel work done in the agent's
	// verdict calls: an accepted SYN is processed by TCP right there.
	AgentCPU map[string]float64 `json:"agent_cpu_s,omitempty"`
	// AgentUSPerConn is the agents' CPU summed over the nodes, per
	// connection accepted (microseconds), for the close mode.
	AgentUSPerConn float64 `json:"agent_cpu_us_per_conn,omitempty"`
}

// queueFinal is a node's NFQUEUE counters after every run.
type queueFinal struct {
	Case   string    `json:"lab"`
	Node   string    `json:"node"`
	Queues []nfQueue `json:"queues"`
}

func runWrk(b *bench, args []string) (any, error) {
	fs := b.flags("wrk [-duration 10s] [-runs 3] [-threads 2] [-conns 50] [-sources 2] [-cases " + strings.Join(allCases, ",") + "]")
	dur := fs.Duration("duration", 10*time.Second, "wrk -d of each run")
	runs := fs.Int("runs", 3, "runs per case and mode (the report gives the median); cases are interleaved run by run")
	threads := fs.Int("threads", 2, "wrk -t (split between the wrk processes of ip-multi)")
	conns := fs.Int("conns", 50, "wrk -c (split between the wrk processes of ip-multi)")
	nsrc := fs.Int("sources", 2, "ip-multi: client source addresses, one wrk each, owned by different nodes")
	nodes := fs.Int("nodes", 3, "nodes of the farm cases")
	casesFlag := fs.String("cases", strings.Join(allCases, ","), "cases to run, comma-separated: "+strings.Join(allCases, ", "))
	if err := b.parse(fs, args); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*casesFlag, ",") {
		c = strings.TrimSpace(c)
		if !slices.Contains(allCases, c) {
			return nil, fmt.Errorf("-cases: unknown case %q (want %s)", c, strings.Join(allCases, ", "))
		}
		want[c] = true
	}
	switch {
	case *runs < 1 || *runs > 50:
		return nil, fmt.Errorf("-runs %d: want 1..50", *runs)
	case *dur < time.Second || *dur > 10*time.Minute:
		return nil, fmt.Errorf("-duration %s: want 1s..10m", *dur)
	case *threads < 1 || *conns < *threads:
		return nil, fmt.Errorf("-threads %d -conns %d: want 1 <= threads <= conns", *threads, *conns)
	case *nsrc < 1 || *nsrc > *conns:
		return nil, fmt.Errorf("-sources %d: want 1..conns", *nsrc)
	case *nodes < 1 || *nodes > lab.MaxNodes:
		return nil, fmt.Errorf("-nodes %d: want 1..%d", *nodes, lab.MaxNodes)
	}

	rep := &wrkReport{
		Machine:  readMachine(),
		Command:  fmt.Sprintf("wrk -t%d -c%d -d%s --latency [-H 'Connection: close'] http://VIP/", *threads, *conns, *dur),
		Duration: dur.String(),
		Runs:     *runs,
	}
	w := &wrkBench{b: b, dur: *dur, threads: *threads, conns: *conns}

	// Build every lab first, then interleave the runs, so that background
	// load on this shared machine falls on every case alike.
	if want[caseBaseline] {
		c, err := w.baseline()
		if err != nil {
			return nil, err
		}
		rep.Cases = append(rep.Cases, c)
	}
	if want[caseIP] || want[caseIPMulti] {
		f, err := b.startFarm(*nodes, "")
		if err != nil {
			return nil, err
		}
		rep.Machine.setFarm(f.l)
		if want[caseIP] {
			c, err := w.farmCase(f, caseIP, "farm, affinity ip: one wrk, one source: all its load on one node")
			if err != nil {
				return nil, err
			}
			rep.Cases = append(rep.Cases, c)
		}
		if want[caseIPMulti] {
			c, err := w.multiCase(f, *nsrc)
			if err != nil {
				return nil, err
			}
			rep.Cases = append(rep.Cases, c)
		}
	}
	if want[caseIPPort] {
		f, err := b.startFarm(*nodes, "[[rule]]\nproto = \"tcp\"\nports = \"80\"\naffinity = \"ip-port\"\n")
		if err != nil {
			return nil, err
		}
		rep.Machine.setFarm(f.l)
		c, err := w.farmCase(f, caseIPPort, "farm, affinity ip-port: one wrk, its connections hashed each on its own")
		if err != nil {
			return nil, err
		}
		rep.Cases = append(rep.Cases, c)
	}
	for _, c := range rep.Cases {
		for _, m := range wrkModes {
			c.Modes = append(c.Modes, &wrkResult{Mode: m, ConnsPerNode: map[string]int64{}})
		}
	}
	total := len(rep.Cases) * len(wrkModes) * *runs
	k := 0
	for r := 0; r < *runs; r++ {
		for _, c := range rep.Cases {
			for _, res := range c.Modes {
				k++
				b.logf("run %d/%d: %s, %s", k, total, c.Name, res.Mode)
				if err := w.run(c, res); err != nil {
					return nil, fmt.Errorf("%s %s run %d: %w", c.Name, res.Mode, r+1, err)
				}
			}
		}
	}
	w.summarize(rep)
	for _, c := range rep.Cases {
		if c.Name == caseBaseline || c.Name == caseIPMulti {
			continue // ip-multi shares the ip lab
		}
		for i := 1; i <= len(c.lab.Nodes); i++ {
			rep.Queues = append(rep.Queues, queueFinal{Case: c.Name, Node: c.lab.Node(i).Name, Queues: queues(b.ctx, c.lab, i)})
		}
	}
	rep.Machine.finish()
	printWrk(b, rep)
	return rep, nil
}

type wrkBench struct {
	b       *bench
	dur     time.Duration
	threads int
	conns   int
}

// baseline builds the reference: one node whose eth0 holds the VIP itself,
// nginx, no agent and no filter.
func (w *wrkBench) baseline() (*wrkCase, error) {
	l, err := w.b.newLab(1)
	if err != nil {
		return nil, err
	}
	if err := l.StartNginx(1); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(w.b.ctx, 10*time.Second)
	defer cancel()
	n := l.Node(1)
	for _, args := range [][]string{
		{"ip", "addr", "add", l.VIP4.String() + "/32", "dev", n.Link},
		{"ip", "addr", "add", l.VIP6.String() + "/128", "dev", n.Link, "nodad"},
	} {
		if _, err := l.Exec(ctx, n.NS, args...); err != nil {
			return nil, fmt.Errorf("baseline: add the VIP by hand: %w", err)
		}
	}
	who, err := l.Get(ctx, l.Client.Addr4, lab.URL(l.VIP4, "/"))
	if err != nil || who != n.Name {
		return nil, fmt.Errorf("baseline: the VIP does not answer from the client: %q, %v", who, err)
	}
	return &wrkCase{Name: caseBaseline, Desc: "1 node, VIP on its eth0 by hand, nginx, no agent, no filter",
		Nodes: 1, Sources: []string{l.Client.Addr4.String()}, Owners: []string{n.Name}, lab: l}, nil
}

// farmCase is one wrk from the client's own address (10.213.0.200).
func (w *wrkBench) farmCase(f *farm, name, desc string) (*wrkCase, error) {
	if _, err := f.steady(f.l.Sources(64), 20*time.Second); err != nil {
		return nil, fmt.Errorf("%s: the farm does not answer every client: %w", name, err)
	}
	who, err := f.owner(w.b.ctx, f.l.Client.Addr4)
	if err != nil {
		return nil, fmt.Errorf("%s: ask the VIP from the client: %w", name, err)
	}
	if name == caseIPPort {
		who = "any (per connection)"
	}
	return &wrkCase{Name: name, Desc: desc, Nodes: len(f.l.Nodes), Sources: []string{f.l.Client.Addr4.String()},
		Owners: []string{who}, lab: f.l, farm: f}, nil
}

// multiCase runs n wrk processes, each from its own client address, picked
// so that different nodes own them. wrk cannot bind a source address, so
// each runs under its own uid and a uid routing rule in the client's
// namespace gives its connections that source.
func (w *wrkBench) multiCase(f *farm, n int) (*wrkCase, error) {
	ctx, cancel := context.WithTimeout(w.b.ctx, 60*time.Second)
	defer cancel()
	c := &wrkCase{Name: caseIPMulti, Nodes: len(f.l.Nodes), lab: f.l, farm: f}
	seen := map[string]bool{}
	var spare []netip.Addr
	var spareOwners []string
	for _, src := range f.l.ClientAddrs4 {
		if len(c.Sources) == n {
			break
		}
		who, err := f.owner(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("ip-multi: ask the VIP from %s: %w", src, err)
		}
		if seen[who] {
			spare, spareOwners = append(spare, src), append(spareOwners, who)
			continue
		}
		seen[who] = true
		c.Sources, c.Owners = append(c.Sources, src.String()), append(c.Owners, who)
	}
	for i := 0; len(c.Sources) < n && i < len(spare); i++ {
		c.Sources, c.Owners = append(c.Sources, spare[i].String()), append(c.Owners, spareOwners[i])
	}
	c.Desc = fmt.Sprintf("farm, affinity ip: %d wrk (threads and connections split), one source each, owners %s",
		len(c.Sources), strings.Join(c.Owners, ", "))
	url := lab.URL(f.l.VIP4, "/")
	for k, src := range c.Sources {
		uid, table := 61000+k, strconv.Itoa(200+k)
		cmds := [][]string{
			{"ip", "rule", "add", "uidrange", fmt.Sprintf("%d-%d", uid, uid), "lookup", table, "priority", table},
			{"ip", "route", "replace", f.l.VIP4.String() + "/32", "dev", f.l.Client.Link, "src", src, "table", table},
		}
		for _, args := range cmds {
			if _, err := f.l.Exec(ctx, f.l.Client.NS, args...); err != nil {
				return nil, fmt.Errorf("ip-multi: route uid %d from %s: %w", uid, src, err)
			}
		}
		// Prove the routing works: a process of that uid reaches the owner.
		out, err := f.l.Exec(ctx, f.l.Client.NS, append(asUID(uid), "curl", "-sS", "--max-time", "3", url)...)
		if got := strings.TrimSpace(string(out)); err != nil || got != c.Owners[k] {
			return nil, fmt.Errorf("ip-multi: uid %d should reach %s from %s, got %q (%v)", uid, c.Owners[k], src, got, err)
		}
		c.uids = append(c.uids, uid)
	}
	return c, nil
}

// asUID runs a command as uid (and gid uid), without supplementary groups.
func asUID(uid int) []string {
	u := strconv.Itoa(uid)
	return []string{"setpriv", "--reuid", u, "--regid", u, "--clear-groups"}
}

// run does one wrk run of case c in mode res.Mode and adds it to res, with
// the counters read around it.
func (w *wrkBench) run(c *wrkCase, res *wrkResult) error {
	ctx, cancel := context.WithTimeout(w.b.ctx, w.dur+60*time.Second)
	defer cancel()
	l := c.lab
	farm := c.Name != caseBaseline
	cpuBefore := agentCPU(c.farm)
	cliBefore := tcpCounters(ctx, l, l.Client.NS)
	nodeBefore := make([]map[string]int64, len(l.Nodes))
	qBefore := make([][]nfQueue, len(l.Nodes))
	for i := range l.Nodes {
		nodeBefore[i] = tcpCounters(ctx, l, l.Nodes[i].NS)
		if farm {
			qBefore[i] = queues(ctx, l, i+1)
		}
	}

	procs := max(1, len(c.uids))
	threads := max(1, w.threads/procs)
	conns := max(threads, w.conns/procs)
	base := []string{"wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", w.dur.String(), "--latency"}
	if res.Mode == "close" {
		base = append(base, "-H", "Connection: close")
	}
	base = append(base, lab.URL(l.VIP4, "/"))
	outs := make([]wrkRun, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := 0; p < procs; p++ {
		args := base
		if len(c.uids) > 0 {
			args = append(asUID(c.uids[p]), base...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := l.Exec(ctx, l.Client.NS, args...)
			if err != nil {
				errs[p] = fmt.Errorf("wrk: %w", err)
				return
			}
			outs[p], errs[p] = parseWrk(string(out))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	res.Runs = append(res.Runs, combine(outs))
	cpuAfter := agentCPU(c.farm)
	for node, v := range cpuAfter {
		if res.AgentCPU == nil {
			res.AgentCPU = map[string]float64{}
		}
		if b, ok := cpuBefore[node]; ok && b <= v {
			res.AgentCPU[node] += v - b
		}
	}

	cliAfter := tcpCounters(ctx, l, l.Client.NS)
	res.SynRetrans += cliAfter["TcpExt.TCPSynRetrans"] - cliBefore["TcpExt.TCPSynRetrans"]
	for i, n := range l.Nodes {
		after := tcpCounters(ctx, l, n.NS)
		res.ConnsPerNode[n.Name] += after["Tcp.PassiveOpens"] - nodeBefore[i]["Tcp.PassiveOpens"]
		if farm {
			if res.Queues == nil {
				res.Queues = map[string]nfQueue{}
			}
			d := queueDelta(qBefore[i], queues(ctx, l, i+1))
			sum := res.Queues[n.Name]
			sum.Queue, sum.Total = d.Queue, d.Total
			sum.Seq += d.Seq
			sum.Dropped += d.Dropped
			sum.UserDropped += d.UserDropped
			res.Queues[n.Name] = sum
		}
	}
	return nil
}

// agentCPU reads every running agent's CPU time so far (user + system,
// seconds), from /proc/PID/stat (in USER_HZ ticks, 100 per second).
func agentCPU(f *farm) map[string]float64 {
	if f == nil {
		return nil
	}
	out := map[string]float64{}
	for i, p := range f.agents {
		if p == nil || p.Exited() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
		rest := string(b)
		if k := strings.LastIndexByte(rest, ')'); k >= 0 {
			rest = rest[k+1:]
		}
		fl := strings.Fields(rest)
		if len(fl) < 13 {
			continue
		}
		ut, err1 := strconv.ParseFloat(fl[11], 64)
		st, err2 := strconv.ParseFloat(fl[12], 64)
		if err1 == nil && err2 == nil {
			out[f.l.Node(i+1).Name] = (ut + st) / 100
		}
	}
	return out
}

// combine sums several simultaneous wrk runs into one: rates and counts
// add up; the p50 is the mean of theirs, the p99 and max the worst.
func combine(runs []wrkRun) wrkRun {
	if len(runs) == 1 {
		return runs[0]
	}
	var c wrkRun
	var p50 time.Duration
	for _, r := range runs {
		c.ReqPerSec += r.ReqPerSec
		c.Requests += r.Requests
		c.Duration = max(c.Duration, r.Duration)
		c.LatMax = max(c.LatMax, r.LatMax)
		c.LatP99 = max(c.LatP99, r.LatP99)
		p50 += r.LatP50
		if c.Requests > 0 {
			c.LatAvg += time.Duration(float64(r.LatAvg) * float64(r.Requests))
		}
		c.ErrConnect += r.ErrConnect
		c.ErrRead += r.ErrRead
		c.ErrWrite += r.ErrWrite
		c.ErrTimeout += r.ErrTimeout
		c.Non2xx += r.Non2xx
	}
	c.LatP50 = p50 / time.Duration(len(runs))
	if c.Requests > 0 {
		c.LatAvg = time.Duration(float64(c.LatAvg) / float64(c.Requests))
	}
	return c
}

func (w *wrkBench) summarize(rep *wrkReport) {
	base := map[string]float64{}
	for _, c := range rep.Cases {
		for _, r := range c.Modes {
			var rps, p50, p99 []float64
			r.Errors = 0
			for _, run := range r.Runs {
				rps = append(rps, run.ReqPerSec)
				p50 = append(p50, ms(run.LatP50))
				p99 = append(p99, ms(run.LatP99))
				r.Errors += run.Errors()
			}
			r.ReqPerSec, r.LatP50, r.LatP99 = median(rps), median(p50), median(p99)
			var cpu float64
			var conns int64
			for _, v := range r.AgentCPU {
				cpu += v
			}
			for _, v := range r.ConnsPerNode {
				conns += v
			}
			// Per connection only where connections are the work (a
			// keep-alive run opens 50).
			if r.Mode == "close" && cpu > 0 && conns > 0 {
				r.AgentUSPerConn = cpu * 1e6 / float64(conns)
			}
			if c.Name == caseBaseline {
				base[r.Mode] = r.ReqPerSec
			}
		}
	}
	for _, c := range rep.Cases {
		for _, r := range c.Modes {
			if b := base[r.Mode]; b > 0 {
				r.Ratio = r.ReqPerSec / b
			}
			if r.Queues != nil {
				for node, q := range r.Queues {
					if q.Dropped > 0 || q.UserDropped > 0 {
						rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: %s's queue %d dropped %d packets (queue full) and %d (reader's socket full) of %d queued",
							c.Name, r.Mode, node, q.Queue, q.Dropped, q.UserDropped, q.Seq))
					}
				}
			}
			if r.SynRetrans > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: the client retransmitted %d SYNs (each costs its connection 1 s)", c.Name, r.Mode, r.SynRetrans))
			}
		}
	}
	slices.Sort(rep.Notes)
}

func printWrk(b *bench, rep *wrkReport) {
	out := b.out()
	fmt.Fprintf(out, "\nfarmbench wrk: %s, from the client namespace; %d runs per row, interleaved; medians\n", rep.Command, rep.Runs)
	fmt.Fprintf(out, "%s\n\n", rep.Machine)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tmode\treq/s\tfarm/baseline\tp50 ms\tp99 ms\terrors\tSYN retrans\tconnections accepted per node\tagent CPU s per node\tagent CPU us/conn\truns req/s")
	for _, c := range rep.Cases {
		for _, r := range c.Modes {
			ratio := "-"
			if r.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", r.Ratio)
			}
			var per []string
			for _, n := range sortedKeys(r.ConnsPerNode) {
				per = append(per, fmt.Sprintf("%s %d", n, r.ConnsPerNode[n]))
			}
			var rs []string
			for _, run := range r.Runs {
				rs = append(rs, fmt.Sprintf("%.0f", run.ReqPerSec))
			}
			cpu, perConn := "-", "-"
			if len(r.AgentCPU) > 0 {
				var parts []string
				for _, n := range sortedKeys(r.AgentCPU) {
					parts = append(parts, fmt.Sprintf("%.1f", r.AgentCPU[n]))
				}
				cpu = strings.Join(parts, "/")
			}
			if r.AgentUSPerConn > 0 {
				perConn = fmt.Sprintf("%.0f", r.AgentUSPerConn)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.2f\t%.2f\t%d\t%d\t%s\t%s\t%s\t%s\n", c.Name, r.Mode, r.ReqPerSec, ratio,
				r.LatP50, r.LatP99, r.Errors, r.SynRetrans, strings.Join(per, ", "), cpu, perConn, strings.Join(rs, " "))
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\ncases:")
	for _, c := range rep.Cases {
		fmt.Fprintf(out, "  %-9s %s; client source %s -> %s\n", c.Name, c.Desc, strings.Join(c.Sources, ", "), strings.Join(c.Owners, ", "))
	}
	fmt.Fprintln(out, "\nNFQUEUE per node (deltas summed over the runs): SYNs queued, dropped (queue full), user_dropped (reader socket full)")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tmode\tnode\tqueue\tqueued\tdropped\tuser_dropped")
	for _, c := range rep.Cases {
		for _, r := range c.Modes {
			for _, n := range sortedKeys(r.Queues) {
				q := r.Queues[n]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\n", c.Name, r.Mode, n, q.Queue, q.Seq, q.Dropped, q.UserDropped)
			}
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\n/proc/net/netfilter/nfnetlink_queue after the run (totals since each agent bound its queue):")
	for _, q := range rep.Queues {
		if len(q.Queues) == 0 {
			fmt.Fprintf(out, "  %-8s %s: no queue bound\n", q.Case, q.Node)
		}
		for _, x := range q.Queues {
			fmt.Fprintf(out, "  %-8s %s: queue %d queued %d, waiting %d, queue_dropped %d, user_dropped %d\n",
				q.Case, q.Node, x.Queue, x.Seq, x.Total, x.Dropped, x.UserDropped)
		}
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(out, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(out, "  - %s\n", n)
		}
	}
}

// sortedKeys lists a map's keys with node names in number order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return keys
}
