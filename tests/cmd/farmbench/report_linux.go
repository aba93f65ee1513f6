package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/webfarm/farm/tests/lab"
)

// The compare cases: what answers the VIP.
const (
	caseNone    = "none"         // (a) one node, the VIP on its eth0, no filter
	caseKernel  = "farm-kernel"  // (b) the farm, kernel engine, 3 nodes
	caseNFQueue = "farm-nfqueue" // (b') the farm, NFQUEUE engine, 3 nodes
	caseXT      = "xt_cluster"   // (c) iptables -m cluster, 3 nodes
	caseJhash   = "nft-jhash"    // (c) nft jhash ip saddr mod 3 with ct marks, 3 nodes
	caseHAProxy = "haproxy"      // (d) HAProxy in a 4th namespace in front of 3 nodes
)

var allCmpCases = []string{caseNone, caseKernel, caseNFQueue, caseXT, caseJhash, caseHAProxy}

var cmpLabels = map[string]string{
	caseNone: "a", caseKernel: "b", caseNFQueue: "b'", caseXT: "c1", caseJhash: "c2", caseHAProxy: "d",
}

var cmpDescs = map[string]string{
	caseNone:    "1 node, the VIP on its eth0 by hand, no filter, no agent",
	caseKernel:  "3 nodes, bin/farm agents, [filter] engine = \"kernel\" (nftables sets decide new flows)",
	caseNFQueue: "3 nodes, bin/farm agents, [filter] engine = \"nfqueue\" (the agent decides every SYN)",
	caseXT:      "3 nodes, VIP by hand (vmac), iptables mangle -m cluster --cluster-total-nodes 3 + MARK, drop the rest",
	caseJhash:   "3 nodes, VIP by hand (vmac), nft: ct mark mine accept; new bare SYN with jhash ip saddr mod 3 == mine: ct mark set, accept; drop the rest",
	caseHAProxy: "HAProxy (Debian) on a 4th node holding the VIP, mode http, http-reuse always, roundrobin over the 3 nodes",
}

// cmpReport is the result of `farmbench compare`.
type cmpReport struct {
	Machine   machine     `json:"machine"`
	Duration  string      `json:"duration"`
	Runs      int         `json:"runs"`
	Sources   int         `json:"sources"`
	PerSource int         `json:"conns_per_source"`
	Cases     []*cmpCase  `json:"cases"`
	Ratios    []cmpRatio  `json:"ratios"`
	Targets   []cmpTarget `json:"targets"`
	Kill      *killReport `json:"kill,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
}

// cmpCase is one lab and its modes.
type cmpCase struct {
	Name  string     `json:"name"`
	Label string     `json:"label"`
	Desc  string     `json:"description"`
	Nodes int        `json:"nodes"`
	UDP   bool       `json:"udp"`
	Modes []*cmpMode `json:"modes"`
	// AgentIdle is the agents' CPU (seconds per second, summed) with no load.
	AgentIdle float64 `json:"agent_idle_cpu"`
	// Flaps counts member-failed events the agents logged during the runs
	// (nobody was killed: false suspicions, each moving buckets).
	Flaps int `json:"member_failed_events"`

	l       *lab.Lab
	f       *farm
	servers []int
	proxy   int
	aux     []*auxProc
}

// cmpMode is one (case, mode): every run and the medians.
type cmpMode struct {
	Mode string    `json:"mode"`
	Runs []*cmpRun `json:"runs"`

	ReqPerSec float64 `json:"req_per_sec"`
	// Per request, microseconds of CPU: the lab (every process of the lab,
	// the load generator included, plus ksoftirqd), the load generator
	// alone, the rest (nodes: nginx, agents, HAProxy, UDP responders,
	// ksoftirqd), and the whole machine (/proc/stat busy, other work on
	// this machine included).
	LabUS     float64 `json:"lab_cpu_us_per_req"`
	ClientUS  float64 `json:"client_cpu_us_per_req"`
	NodesUS   float64 `json:"nodes_cpu_us_per_req"`
	MachineUS float64 `json:"machine_cpu_us_per_req"`
	// AgentUSPerReq is the agents' CPU above their idle rate per answered
	// request, summed over the nodes; AgentUSPerSYN divides it by the
	// packets queued to user space instead (NFQUEUE engine: every node
	// queues every new flow's first packet).
	AgentUSPerReq float64 `json:"agent_cpu_us_per_req"`
	AgentUSPerSYN float64 `json:"agent_cpu_us_per_queued,omitempty"`
	AgentSysShare float64 `json:"agent_sys_share,omitempty"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`

	Requests   int64            `json:"requests"`
	Failures   int64            `json:"failures"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	Slow       int64            `json:"slow"`
	SynRetrans int64            `json:"client_syn_retrans"`
	PerNode    map[string]int64 `json:"per_node"`
	Queued     int64            `json:"queued"`
}

// cmpRun is one run's raw figures.
type cmpRun struct {
	Load           *loadResult      `json:"load"`
	Loadavg        string           `json:"loadavg"`
	ClientCPU      float64          `json:"client_cpu_s"`
	ClientUser     float64          `json:"client_user_s"`
	NginxCPU       float64          `json:"nginx_cpu_s"`
	AgentCPU       float64          `json:"agent_cpu_s"`
	AgentUser      float64          `json:"agent_user_s"`
	AgentSys       float64          `json:"agent_sys_s"`
	ProxyCPU       float64          `json:"haproxy_cpu_s"`
	EchoCPU        float64          `json:"udpecho_cpu_s"`
	SoftirqdCPU    float64          `json:"ksoftirqd_cpu_s"`
	MachineBusy    float64          `json:"machine_busy_s"`
	MachineSoftirq float64          `json:"machine_softirq_s"`
	MachineTotal   float64          `json:"machine_total_s"`
	SynRetrans     int64            `json:"client_syn_retrans"`
	Queued         map[string]int64 `json:"queued,omitempty"`

	ReqPerSec     float64 `json:"req_per_sec"`
	LabUS         float64 `json:"lab_us"`
	ClientUS      float64 `json:"client_us"`
	NodesUS       float64 `json:"nodes_us"`
	MachineUS     float64 `json:"machine_us"`
	AgentUSPerReq float64 `json:"agent_us_per_req"`
	AgentUSPerSYN float64 `json:"agent_us_per_queued"`
}

// derive computes the per-request figures of a run; idle is the agents'
// CPU without load (seconds per second), taken out of theirs.
func (r *cmpRun) derive(seconds, idle float64) {
	n := float64(r.Load.Requests)
	if n == 0 || seconds <= 0 {
		return
	}
	nodes := r.NginxCPU + r.AgentCPU + r.ProxyCPU + r.EchoCPU + r.SoftirqdCPU
	r.ReqPerSec = n / seconds
	r.LabUS = (r.ClientCPU + nodes) * 1e6 / n
	r.ClientUS = r.ClientCPU * 1e6 / n
	r.NodesUS = nodes * 1e6 / n
	r.MachineUS = r.MachineBusy * 1e6 / n
	agent := max(0, r.AgentCPU-idle*seconds)
	r.AgentUSPerReq = agent * 1e6 / n
	var q int64
	for _, v := range r.Queued {
		q += v
	}
	if q > 0 {
		r.AgentUSPerSYN = agent * 1e6 / float64(q)
	}
}

// cmpRatio is the farm over a reference in one mode, by throughput and by
// CPU per request (reference / farm: above 1 means the farm is cheaper).
type cmpRatio struct {
	Name string  `json:"name"`
	Mode string  `json:"mode"`
	Of   string  `json:"of"`
	Over string  `json:"over"`
	RPS  float64 `json:"req_per_sec_ratio"`
	CPU  float64 `json:"cpu_ratio"`
}

// cmpTarget is one of issue 9's targets and whether this run met it, by
// throughput and by CPU per request (the peer's over the farm's).
type cmpTarget struct {
	What   string  `json:"what"`
	Want   float64 `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
	GotCPU float64 `json:"got_cpu,omitempty"`
	MetCPU bool    `json:"met_cpu,omitempty"`
}

func summarizeCompare(rep *cmpReport) {
	for _, c := range rep.Cases {
		for _, m := range c.Modes {
			m.summarize()
		}
	}
	get := func(name, mode string) *cmpMode {
		for _, c := range rep.Cases {
			if c.Name != name {
				continue
			}
			for _, m := range c.Modes {
				if m.Mode == mode {
					return m
				}
			}
		}
		return nil
	}
	rep.Ratios, rep.Targets = nil, nil
	for _, mode := range loadModes {
		b := get(caseKernel, mode)
		if b == nil {
			continue
		}
		ratio := func(name, of, over string, m *cmpMode) {
			if m == nil || m.ReqPerSec == 0 || b.LabUS == 0 {
				return
			}
			rep.Ratios = append(rep.Ratios, cmpRatio{Name: name, Mode: mode, Of: of, Over: over, RPS: b.ReqPerSec / m.ReqPerSec, CPU: m.LabUS / b.LabUS})
		}
		ratio("b/a", caseKernel, caseNone, get(caseNone, mode))
		xt, jh := get(caseXT, mode), get(caseJhash, mode)
		best, bestName := xt, caseXT
		if jh != nil && (best == nil || jh.ReqPerSec > best.ReqPerSec) {
			best, bestName = jh, caseJhash
		}
		ratio("b/c", caseKernel, bestName, best)
		// The better peer by CPU per request may be the other one.
		cheap, cheapName := xt, caseXT
		if jh != nil && (cheap == nil || (jh.LabUS > 0 && jh.LabUS < cheap.LabUS)) {
			cheap, cheapName = jh, caseJhash
		}
		if cheapName != bestName {
			ratio("b/c-cpu", caseKernel, cheapName, cheap)
		}
		ratio("b/d", caseKernel, caseHAProxy, get(caseHAProxy, mode))
		if nf := get(caseNFQueue, mode); nf != nil && nf.ReqPerSec > 0 && b.ReqPerSec > 0 {
			rep.Ratios = append(rep.Ratios, cmpRatio{Name: "b'/b", Mode: mode, Of: caseNFQueue, Over: caseKernel,
				RPS: nf.ReqPerSec / b.ReqPerSec, CPU: b.LabUS / nf.LabUS})
		}
	}
	find := func(name, mode string) (cmpRatio, bool) {
		for _, r := range rep.Ratios {
			if r.Name == name && r.Mode == mode {
				return r, true
			}
		}
		return cmpRatio{}, false
	}
	target := func(what, name, mode string, want float64) {
		r, ok := find(name, mode)
		if !ok {
			return
		}
		t := cmpTarget{What: what, Want: want, Got: r.RPS, Met: r.RPS >= want, GotCPU: r.CPU, MetCPU: r.CPU >= want}
		if name == "b/c" {
			if rc, ok := find("b/c-cpu", mode); ok {
				t.GotCPU, t.MetCPU = rc.CPU, rc.CPU >= want
			}
		}
		rep.Targets = append(rep.Targets, t)
	}
	target("b >= 1.0 x the better kernel peer, keep-alive", "b/c", modeKeepAlive, 1.0)
	target("b >= 1.0 x the better kernel peer, close", "b/c", modeClose, 1.0)
	target("b >= 1.5 x HAProxy, keep-alive", "b/d", modeKeepAlive, 1.5)
	target("b >= 1.2 x HAProxy, close", "b/d", modeClose, 1.2)
	var fails int64
	var seen bool
	for _, c := range rep.Cases {
		if c.Name != caseKernel && c.Name != caseNFQueue {
			continue
		}
		for _, m := range c.Modes {
			fails += m.Failures
			seen = true
		}
	}
	if seen {
		rep.Targets = append(rep.Targets, cmpTarget{What: "0 failed requests (b, b')", Want: 0, Got: float64(fails), Met: fails == 0})
	}
	rep.Notes = nil
	for _, c := range rep.Cases {
		if c.Flaps > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: the agents logged %d member-failed events during the runs with nobody killed (false suspicions, e.g. under CPU starvation): buckets moved, live flows may have been reset", c.Name, c.Flaps))
		}
		for _, m := range c.Modes {
			if m.Failures > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: %d failed requests %v", c.Name, m.Mode, m.Failures, m.Errors))
			}
			if m.SynRetrans > 0 || m.Slow > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: %d SYNs retransmitted by the client, %d requests slower than 900 ms", c.Name, m.Mode, m.SynRetrans, m.Slow))
			}
		}
	}
}

func (m *cmpMode) summarize() {
	var rps, lab, cli, nodes, mach, apc, aps, p50, p99 []float64
	m.Requests, m.Failures, m.Slow, m.SynRetrans, m.Queued = 0, 0, 0, 0, 0
	m.Errors, m.PerNode = map[string]int64{}, map[string]int64{}
	var au, as float64
	for _, r := range m.Runs {
		rps = append(rps, r.ReqPerSec)
		lab = append(lab, r.LabUS)
		cli = append(cli, r.ClientUS)
		nodes = append(nodes, r.NodesUS)
		mach = append(mach, r.MachineUS)
		apc = append(apc, r.AgentUSPerReq)
		aps = append(aps, r.AgentUSPerSYN)
		p50 = append(p50, r.Load.P50)
		p99 = append(p99, r.Load.P99)
		m.Requests += r.Load.Requests
		m.Failures += r.Load.Failures
		m.Slow += r.Load.Slow
		m.SynRetrans += r.SynRetrans
		for k, v := range r.Load.Errors {
			m.Errors[k] += v
		}
		for k, v := range r.Load.PerNode {
			m.PerNode[k] += v
		}
		for _, v := range r.Queued {
			m.Queued += v
		}
		au += r.AgentUser
		as += r.AgentSys
	}
	m.ReqPerSec, m.LabUS, m.ClientUS, m.NodesUS, m.MachineUS = median(rps), median(lab), median(cli), median(nodes), median(mach)
	m.AgentUSPerReq, m.AgentUSPerSYN, m.P50us, m.P99us = median(apc), median(aps), median(p50), median(p99)
	if au+as > 0 {
		m.AgentSysShare = as / (au + as)
	}
}

func printCompare(out io.Writer, rep *cmpReport) {
	fmt.Fprintf(out, "\nfarmbench compare: the farm side by side with no filter, the kernel's cluster filters and HAProxy\n")
	fmt.Fprintf(out, "load: farmbench load from the client namespace, %d source addresses x %d connection(s), %s per run, %d runs per row interleaved round robin; medians\n",
		rep.Sources, rep.PerSource, rep.Duration, rep.Runs)
	fmt.Fprintf(out, "%s\n\n", rep.Machine)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcase\tmode\treq/s\tx (a)\tfailed\tslow\tCPU us/req: lab\tclient\tnodes\tmachine\tagents us/req\tagents us/SYN\tp50 ms\tp99 ms\treq/s per run\tserved by\t")
	base := map[string]float64{}
	for _, c := range rep.Cases {
		if c.Name == caseNone {
			for _, m := range c.Modes {
				base[m.Mode] = m.ReqPerSec
			}
		}
	}
	for _, c := range rep.Cases {
		for _, m := range c.Modes {
			x := "-"
			if b := base[m.Mode]; b > 0 {
				x = fmt.Sprintf("%.2f", m.ReqPerSec/b)
			}
			agent, perSYN := "-", "-"
			if c.Name == caseKernel || c.Name == caseNFQueue {
				agent = fmt.Sprintf("%.1f", m.AgentUSPerReq)
				// Per queued packet only where every request is a new flow
				// (a keep-alive run queues 64 SYNs: noise).
				if m.Queued > 0 && 2*m.Queued >= m.Requests {
					perSYN = fmt.Sprintf("%.1f (%.0f%% sys)", m.AgentUSPerSYN, 100*m.AgentSysShare)
				}
			}
			var rs []string
			for _, r := range m.Runs {
				rs = append(rs, fmt.Sprintf("%.0f", r.ReqPerSec))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t\n",
				"("+c.Label+")", c.Name, m.Mode, m.ReqPerSec, x, m.Failures, m.Slow, m.LabUS, m.ClientUS, m.NodesUS, m.MachineUS,
				agent, perSYN, m.P50us/1000, m.P99us/1000, strings.Join(rs, " "), shares(m.PerNode))
		}
	}
	if k := rep.Kill; k != nil {
		fmt.Fprintf(tw, "(kill)\t%s\tclose %.0f/s\t%.0f\t-\t%d\t%d\t\t\t\t\t\t\t\t\t\tSYN-ACKs %d for %d SYNs, doubles %d; %s after the kill: %d SYN-ACKs, %d new flows\t\n",
			caseKernel, k.Rate, k.ReqPerSec, k.Failures, k.Slow, k.SynAcks, k.ClientSYNs, k.Doubles, k.Victim, k.VictimSynAcksAfter, k.VictimNewFlows)
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "\nratios of the farm (b = farm-kernel) by req/s, and by CPU per request (the other's lab CPU us/req over the farm's: above 1 = the farm is cheaper);")
	fmt.Fprintln(out, "b/c is over the faster kernel peer, b/c-cpu over the cheaper one when that is the other:")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tmode\tover\treq/s\tCPU/req")
	for _, r := range rep.Ratios {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f\n", r.Name, r.Mode, r.Over, r.RPS, r.CPU)
	}
	_ = tw.Flush()
	if len(rep.Targets) > 0 {
		fmt.Fprintln(out, "\nissue 9 targets, by req/s and by CPU per request (the same ratio of the other's CPU us/req over the farm's):")
		verdict := func(met bool) string {
			if met {
				return "met"
			}
			return "NOT MET"
		}
		for _, t := range rep.Targets {
			if strings.HasPrefix(t.What, "0 failed") {
				fmt.Fprintf(out, "  %-48s %s (%.0f failed)\n", t.What, verdict(t.Met), t.Got)
				continue
			}
			fmt.Fprintf(out, "  %-48s req/s %.2f %-7s  CPU %.2f %s\n", t.What, t.Got, verdict(t.Met), t.GotCPU, verdict(t.MetCPU))
		}
	}
	if k := rep.Kill; k != nil {
		fmt.Fprintf(out, "\nkill: %s\n", k.Summary())
	}
	fmt.Fprintln(out, "\ncases:")
	for _, c := range rep.Cases {
		fmt.Fprintf(out, "  (%s) %-13s %s\n", c.Label, c.Name, c.Desc)
	}
	fmt.Fprintln(out, `columns: lab = every process of the case's lab (load generator, nginx, agents, HAProxy, UDP responders) plus ksoftirqd,
  per answered request; client = the load generator alone (its system time carries the nodes' receive path: veth runs
  softirq in the sender); nodes = lab - client; machine = /proc/stat busy time of the whole machine (other work included);
  agents us/req = the agents' CPU above their idle rate (summed over the nodes) per request; agents us/SYN = the same
  per packet queued to user space (NFQUEUE: each node queues each new flow); slow = requests over 900 ms (a dropped
  SYN or query, retried). On a shared machine req/s follows the CPU share the lab gets from other work; CPU per request
  does much less: read the CPU ratios first.`)
	if len(rep.Notes) > 0 {
		fmt.Fprintln(out, "\nnotes:")
		for _, n := range rep.Notes {
			fmt.Fprintf(out, "  - %s\n", n)
		}
	}
}

// shares renders answers per node as percentages, nodes in number order.
func shares(per map[string]int64) string {
	var total int64
	for _, v := range per {
		total += v
	}
	if total == 0 {
		return "-"
	}
	keys := sortedKeys(per)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*float64(per[k])/float64(total)))
	}
	return strings.Join(parts, " ")
}
