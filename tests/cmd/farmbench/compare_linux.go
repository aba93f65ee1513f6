package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// `farmbench compare`: the farm side by side with what it replaces, in one
// run. Every case is its own lab, all built first; then the runs go round
// robin (run 1 of every case and mode, then run 2...), so background load
// on this shared machine falls on every case alike. The same Go load
// generator drives every case from the client namespace with 64 client
// source addresses, one connection each.

func runCompare(b *bench, args []string) (any, error) {
	fs := b.flags("compare [-duration 10s] [-runs 3] [-cases " + strings.Join(allCmpCases, ",") + "] [-modes ...] [-kill=true]")
	dur := fs.Duration("duration", 10*time.Second, "length of each run")
	runs := fs.Int("runs", 3, "runs per case and mode (medians are reported)")
	casesFlag := fs.String("cases", strings.Join(allCmpCases, ","), "cases: "+strings.Join(allCmpCases, ", "))
	modesFlag := fs.String("modes", strings.Join(loadModes, ","), "load modes: "+strings.Join(loadModes, ", ")+" (UDP only where a case has a UDP responder)")
	per := fs.Int("per", 1, "connections per client source address (64 sources)")
	nsrc := fs.Int("sources", 64, "client source addresses")
	threads := fs.Int("haproxy-threads", 2, "HAProxy nbthread (0: its default)")
	kill := fs.Bool("kill", true, "after the runs, the SIGKILL scenario on the kernel-engine farm (see farmbench kill)")
	killRate := fs.Float64("kill-rate", 1000, "kill scenario: new connections per second")
	hold := fs.Bool("hold", false, "build the labs, print their namespaces and wait until interrupted, without measuring (to measure by hand: farmbench load in the client namespace, nft in the nodes')")
	from := fs.String("from", "", "print the table of an earlier run from its JSON (-o FILE) instead of measuring")
	if err := b.parse(fs, args); err != nil {
		return nil, err
	}
	if *from != "" {
		return reprint(b, *from)
	}
	want, err := pick(*casesFlag, allCmpCases, "-cases")
	if err != nil {
		return nil, err
	}
	modes, err := pick(*modesFlag, loadModes, "-modes")
	if err != nil {
		return nil, err
	}
	if len(want) == 0 || len(modes) == 0 {
		return nil, fmt.Errorf("-cases and -modes: want at least one each")
	}
	switch {
	case *runs < 1 || *runs > 50:
		return nil, fmt.Errorf("-runs %d: want 1..50", *runs)
	case *dur < time.Second || *dur > 10*time.Minute:
		return nil, fmt.Errorf("-duration %s: want 1s..10m", *dur)
	case *nsrc < 1 || *nsrc > 64:
		return nil, fmt.Errorf("-sources %d: want 1..64", *nsrc)
	case *per < 1 || *per > 64:
		return nil, fmt.Errorf("-per %d: want 1..64", *per)
	}
	rep := &cmpReport{Machine: readMachine(), Duration: dur.String(), Runs: *runs, Sources: *nsrc, PerSource: *per}
	cb := &cmpBench{b: b, dur: *dur, nsrc: *nsrc, per: *per, threads: *threads}

	for _, name := range allCmpCases {
		if !want[name] {
			continue
		}
		c, err := cb.build(name)
		if err != nil {
			return nil, fmt.Errorf("build case %s: %w", name, err)
		}
		if c.f != nil {
			rep.Machine.setFarm(c.f.l)
		}
		for _, m := range loadModes {
			if !modes[m] || (isUDP(m) && !c.UDP) {
				continue
			}
			c.Modes = append(c.Modes, &cmpMode{Mode: m})
		}
		if err := cb.smoke(c); err != nil {
			return nil, fmt.Errorf("case %s: %w", name, err)
		}
		rep.Cases = append(rep.Cases, c)
	}
	if *hold {
		for _, c := range rep.Cases {
			b.logf("holding (%s) %s: lab %s, client namespace %s, nodes %s", c.Label, c.Name, c.l.ID, c.l.Client.NS, strings.Join(c.l.Namespaces()[1:len(c.l.Nodes)+1], " "))
		}
		b.logf("holding the labs until interrupted (SIGINT/SIGTERM); sources %s..%s", c0(rep).l.ClientAddrs4[0], c0(rep).l.ClientAddrs4[*nsrc-1])
		<-b.ctx.Done()
		return nil, b.ctx.Err()
	}
	// The agents' own idle CPU, to take out of their figures under load.
	if err := cb.idle(rep.Cases, 5*time.Second); err != nil {
		return nil, err
	}
	total := 0
	flapsBefore := map[*cmpCase]int{}
	for _, c := range rep.Cases {
		total += len(c.Modes) * *runs
		flapsBefore[c] = c.memberFailed()
	}
	k := 0
	for r := 0; r < *runs; r++ {
		for _, c := range rep.Cases {
			for _, m := range c.Modes {
				k++
				b.logf("run %d/%d: %s, %s (loadavg %s)", k, total, c.Name, m.Mode, readTrim("/proc/loadavg"))
				if err := cb.run(c, m); err != nil {
					return nil, fmt.Errorf("%s %s run %d: %w", c.Name, m.Mode, r+1, err)
				}
			}
		}
	}
	for _, c := range rep.Cases {
		c.Flaps = c.memberFailed() - flapsBefore[c]
	}
	summarizeCompare(rep)
	var killErr error
	if *kill {
		var fk *farm
		for _, c := range rep.Cases {
			if c.Name == caseKernel {
				fk = c.f
			}
		}
		if fk == nil {
			b.logf("kill scenario skipped: no %s case", caseKernel)
		} else {
			kr, err := killScenario(b, fk, killOptions{victim: 2, rate: *killRate, before: 3 * time.Second, after: 5 * time.Second, sources: *nsrc})
			if err != nil {
				killErr = fmt.Errorf("kill scenario: %w", err)
				rep.Notes = append(rep.Notes, killErr.Error())
			}
			rep.Kill = kr
		}
	}
	rep.Machine.finish()
	printCompare(b.out(), rep)
	return rep, killErr
}

// reprint prints the table of a saved run, derived again from its raw
// figures (so a newer farmbench shows an older run its way).
func reprint(b *bench, path string) (any, error) {
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rep := &cmpReport{}
	if err := json.Unmarshal(js, rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range rep.Cases {
		for _, m := range c.Modes {
			for _, r := range m.Runs {
				if r.Load != nil {
					r.derive(r.Load.Seconds, c.AgentIdle)
				}
			}
		}
	}
	summarizeCompare(rep)
	printCompare(b.out(), rep)
	return rep, nil
}

// c0 is the first case (every lab has the same address plan).
func c0(rep *cmpReport) *cmpCase { return rep.Cases[0] }

// pick parses a comma-separated selection out of all.
func pick(list string, all []string, flagName string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !slices.Contains(all, c) {
			return nil, fmt.Errorf("%s: unknown %q (want %s)", flagName, c, strings.Join(all, ", "))
		}
		out[c] = true
	}
	return out, nil
}

func isUDP(mode string) bool { return mode == modeUDP || mode == modeUDPNew }

type cmpBench struct {
	b       *bench
	dur     time.Duration
	nsrc    int
	per     int
	threads int
}

// farmRules are the agents' rules in the compare labs: the web port and the
// UDP responder's, both by client address.
const farmRules = `[[rule]]
proto = "tcp"
ports = "80"
affinity = "ip"

[[rule]]
proto = "udp"
ports = "5353"
affinity = "ip"
`

func (cb *cmpBench) build(name string) (*cmpCase, error) {
	b := cb.b
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	c := &cmpCase{Name: name, Label: cmpLabels[name], Desc: cmpDescs[name], Nodes: 3}
	switch name {
	case caseNone:
		l, err := b.newLab(1)
		if err != nil {
			return nil, err
		}
		c.l, c.Nodes, c.servers = l, 1, []int{1}
		if err := l.StartNginx(1); err != nil {
			return nil, err
		}
		if err := sh(ctx, l, l.Node(1).NS, fmt.Sprintf("ip addr add %s/32 dev %s", l.VIP4, l.Node(1).Link)); err != nil {
			return nil, err
		}
		if err := cb.echo(c); err != nil {
			return nil, err
		}
	case caseKernel, caseNFQueue:
		engine := "kernel"
		if name == caseNFQueue {
			engine = "nfqueue"
		}
		f, err := b.startFarm(3, farmRules+"\n[filter]\nengine = \""+engine+"\"\n")
		if err != nil {
			return nil, err
		}
		c.l, c.f, c.servers = f.l, f, []int{1, 2, 3}
		if _, err := f.steady(f.l.Sources(cb.nsrc), 20*time.Second); err != nil {
			return nil, fmt.Errorf("the farm does not answer every client: %w", err)
		}
		if err := cb.echo(c); err != nil {
			return nil, err
		}
	case caseXT, caseJhash:
		l, err := b.newLab(3)
		if err != nil {
			return nil, err
		}
		c.l, c.servers = l, []int{1, 2, 3}
		for i := 1; i <= 3; i++ {
			if err := l.StartNginx(i); err != nil {
				return nil, err
			}
		}
		if name == caseXT {
			err = xtCluster(ctx, l)
		} else {
			err = nftJhash(ctx, l)
		}
		if err != nil {
			return nil, err
		}
		if err := handVIP(ctx, l, 1); err != nil {
			return nil, err
		}
	case caseHAProxy:
		l, err := b.newLab(4)
		if err != nil {
			return nil, err
		}
		c.l, c.servers, c.proxy = l, []int{1, 2, 3}, 4
		for i := 1; i <= 3; i++ {
			if err := l.StartNginx(i); err != nil {
				return nil, err
			}
		}
		p, err := startHAProxy(ctx, l, 4, cb.threads)
		if err != nil {
			return nil, err
		}
		c.aux = append(c.aux, p)
	}
	// Every client reaches the VIP, each always on the same node (the
	// proxy balances per request: any node).
	res := c.l.Burst(ctx, c.l.ClientAddrs4[:cb.nsrc], 2, func(netip.Addr) string { return lab.URL(c.l.VIP4, "/") })
	if len(res.Failures) > 0 {
		return nil, fmt.Errorf("%d of %d requests to the VIP failed, first: %s", len(res.Failures), res.Requests, res.Failures[0])
	}
	if c.proxy == 0 && len(res.Split()) > 0 {
		return nil, fmt.Errorf("sources answered by two nodes: %v", res.Split())
	}
	if len(res.PerNode) != len(c.servers) {
		return nil, fmt.Errorf("answers from %v, want %d nodes", res.Nodes(), len(c.servers))
	}
	b.logf("case %s ready: %s", name, strings.ReplaceAll(strings.TrimSpace(res.Table()), "\n", "; "))
	return c, nil
}

// echo starts the UDP responder on every serving node.
func (cb *cmpBench) echo(c *cmpCase) error {
	for _, i := range c.servers {
		p, err := startEcho(c.l, i)
		if err != nil {
			return err
		}
		c.aux = append(c.aux, p)
	}
	c.UDP = true
	return nil
}

// smoke runs every mode of c for a second: no failure, every node answers.
func (cb *cmpBench) smoke(c *cmpCase) error {
	for _, m := range c.Modes {
		var res *loadResult
		var err error
		// A UDP responder may need a moment after the VIP appears.
		for try := 0; try < 5; try++ {
			res, err = runLoadProc(cb.b.ctx, c.l.Client.NS, c.target(m.Mode), c.l.ClientAddrs4[:cb.nsrc], cb.per, m.Mode, time.Second, 0)
			if err == nil && res.Failures == 0 && len(res.PerNode) == len(c.servers) {
				break
			}
			if cb.b.sleep(500*time.Millisecond) != nil {
				return cb.b.ctx.Err()
			}
		}
		if err != nil {
			return err
		}
		if res.Failures > 0 || len(res.PerNode) != len(c.servers) {
			return fmt.Errorf("smoke run %s: %d requests, %d failed (%v), answered by %v", m.Mode, res.Requests, res.Failures, res.Errors, res.PerNode)
		}
	}
	return nil
}

// idle measures each agent's CPU while nothing but gossip happens.
func (cb *cmpBench) idle(cases []*cmpCase, d time.Duration) error {
	before := make([]cpuSample, len(cases))
	for i, c := range cases {
		before[i] = c.sample()
	}
	if err := cb.b.sleep(d); err != nil {
		return err
	}
	for i, c := range cases {
		c.AgentIdle = c.sample().delta(before[i]).sum("agent/") / d.Seconds()
	}
	return nil
}

func (c *cmpCase) target(mode string) netip.AddrPort {
	if isUDP(mode) {
		return netip.AddrPortFrom(c.l.VIP4, udpPort)
	}
	return netip.AddrPortFrom(c.l.VIP4, 80)
}

// sample reads the CPU time of every process of the case's lab: nginx
// (master and worker) per node, the agents, HAProxy, the UDP responders,
// and ksoftirqd (the machine's, charged to whichever case runs).
func (c *cmpCase) sample() cpuSample {
	s := cpuSample{}
	for _, i := range c.servers {
		for _, pid := range nginxPIDs(c.l, i) {
			s.add("nginx/"+c.l.Node(i).Name, pid)
		}
	}
	if c.f != nil {
		for i, p := range c.f.agents {
			if p != nil && !p.Exited() {
				s.add("agent/"+c.l.Node(i+1).Name, p.PID())
			}
		}
	}
	for _, p := range c.aux {
		if !p.exited() {
			s.add(strings.SplitN(p.name, "-", 2)[0]+"/"+p.name, p.pid)
		}
	}
	for _, pid := range ksoftirqdPIDs() {
		s.add("ksoftirqd/", pid)
	}
	return s
}

// run does one run of case c in mode m.
func (cb *cmpBench) run(c *cmpCase, m *cmpMode) error {
	ctx := cb.b.ctx
	l := c.l
	farm := c.f != nil
	qBefore := map[string]int64{}
	if farm {
		for i := 1; i <= len(l.Nodes); i++ {
			qBefore[l.Node(i).Name] = queuedTotal(queues(ctx, l, i))
		}
	}
	cliBefore := tcpCounters(ctx, l, l.Client.NS)
	load1 := readTrim("/proc/loadavg")
	before := c.sample()
	mBefore := readMachineCPU()
	res, err := runLoadProc(ctx, l.Client.NS, c.target(m.Mode), l.ClientAddrs4[:cb.nsrc], cb.per, m.Mode, cb.dur, 0)
	mAfter := readMachineCPU()
	after := c.sample()
	if err != nil {
		return err
	}
	r := &cmpRun{Load: res, Loadavg: load1}
	d := after.delta(before)
	r.ClientCPU = res.UserS + res.SysS
	r.ClientUser = res.UserS
	r.NginxCPU = d.sum("nginx/")
	r.AgentCPU = d.sum("agent/")
	r.ProxyCPU = d.sum("haproxy/")
	r.EchoCPU = d.sum("udpecho/")
	r.SoftirqdCPU = d.sum("ksoftirqd/")
	for k, v := range d {
		if strings.HasPrefix(k, "agent/") {
			r.AgentUser += v[0]
			r.AgentSys += v[1]
		}
	}
	mc := mAfter.sub(mBefore)
	r.MachineBusy, r.MachineSoftirq, r.MachineTotal = mc.Busy, mc.Softirq, mc.Total
	cliAfter := tcpCounters(ctx, l, l.Client.NS)
	r.SynRetrans = cliAfter["TcpExt.TCPSynRetrans"] - cliBefore["TcpExt.TCPSynRetrans"]
	if farm {
		r.Queued = map[string]int64{}
		for i := 1; i <= len(l.Nodes); i++ {
			n := l.Node(i).Name
			r.Queued[n] = queuedTotal(queues(ctx, l, i)) - qBefore[n]
		}
	}
	r.derive(cb.dur.Seconds(), c.AgentIdle)
	m.Runs = append(m.Runs, r)
	return nil
}

// memberFailed counts the member-failed events the case's agents logged
// so far: with nobody killed, each is a false suspicion that moved buckets.
func (c *cmpCase) memberFailed() int {
	if c.f == nil {
		return 0
	}
	n := 0
	for i := 1; i <= len(c.l.Nodes); i++ {
		b, err := os.ReadFile(c.l.AgentLogPath(i))
		if err == nil {
			n += strings.Count(string(b), "EventMemberFailed")
		}
	}
	return n
}

func queuedTotal(qs []nfQueue) int64 {
	var t int64
	for _, q := range qs {
		t += q.Seq
	}
	return t
}
