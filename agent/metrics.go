package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webfarm/farm/filter/nfqueue"
)

// The metrics are read when scraped, from the components' own counters: no
// metric is updated on the packet path beyond the engines' atomics.
var (
	mFlowsSeen = prometheus.NewDesc("farm_flows_seen_total",
		"New flows to a VIP this node saw before its verdict (every node should see all of them).", []string{"vip"}, nil)
	mVerdicts = prometheus.NewDesc("farm_engine_packets_total",
		"Queued packets decided by the engine, by verdict (accepted: this node's new flows; reset: orphans of a dead node).", []string{"verdict"}, nil)
	mEngineErrors = prometheus.NewDesc("farm_engine_errors_total",
		"Receive and verdict failures and socket overflows of the engine.", nil, nil)
	mLatency = prometheus.NewDesc("farm_verdict_latency_seconds",
		"Time from a queued packet reaching the NFQUEUE engine to its verdict.", nil, nil)
	mQueueDrops = prometheus.NewDesc("farm_queue_dropped_total",
		"Packets the kernel dropped from this node's NFQUEUE queues (queue full, or the socket full).", []string{"queue", "why"}, nil)
	mBuckets = prometheus.NewDesc("farm_buckets_owned",
		"Buckets this node answers for now.", nil, nil)
	mServing = prometheus.NewDesc("farm_serving",
		"1 while this node answers new connections.", nil, nil)
	mMembers = prometheus.NewDesc("farm_members",
		"Farm members as this node sees them, by state.", []string{"state"}, nil)
	mQuorum = prometheus.NewDesc("farm_quorum",
		"1 while this node sees a majority of the farm.", nil, nil)
	mChecker = prometheus.NewDesc("farm_checker_passing",
		"1 while the checker passes.", []string{"checker", "type"}, nil)
	mRestarts = prometheus.NewDesc("farm_app_restarts",
		"Application restarts within the current restart window.", nil, nil)
	mFlows = prometheus.NewDesc("farm_flows_established",
		"This node's established flows to the VIPs (-1: unknown).", nil, nil)
	mDelivery = prometheus.NewDesc("farm_frame_delivery_ratio",
		"New connections a node saw over its peers' median (1 = all of them; low = frames not delivered).", []string{"node"}, nil)
	mGossipHealth = prometheus.NewDesc("farm_gossip_health_score",
		"memberlist's health score of this node (0 is healthy; higher means it is slow to answer probes).", nil, nil)
)

// collector reads the agent's state at scrape time.
type collector struct{ a *Agent }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mFlowsSeen, mVerdicts, mEngineErrors, mLatency, mQueueDrops, mBuckets, mServing,
		mMembers, mQuorum, mChecker, mRestarts, mFlows, mDelivery, mGossipHealth} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if s, ok := a.engine.(seer); ok {
		for i, n := range s.Seen() {
			if vips := a.cfg.VIPs(); i < len(vips) {
				counter(mFlowsSeen, float64(n), vips[i].Addr.String())
			}
		}
	}
	if e, ok := a.engine.(*nfqueue.Engine); ok {
		st := e.Stats()
		counter(mVerdicts, float64(st.Accepted), "accepted")
		counter(mVerdicts, float64(st.Dropped), "dropped")
		counter(mVerdicts, float64(st.Reset), "reset")
		counter(mEngineErrors, float64(st.Errors))
		lat := e.Latency()
		buckets := map[float64]uint64{}
		var cum uint64
		for i, b := range nfqueue.LatencyBounds {
			cum += lat.Counts[i]
			buckets[b.Seconds()] = cum
		}
		cum += lat.Counts[len(lat.Counts)-1]
		ch <- prometheus.MustNewConstHistogram(mLatency, cum, lat.Sum.Seconds(), buckets)
		first, n := uint32(a.cfg.Filter.Queue), uint32(a.cfg.Filter.Queues)
		for _, q := range queueStats() {
			if q.id >= first && q.id < first+n {
				id := strconv.FormatUint(uint64(q.id), 10)
				counter(mQueueDrops, float64(q.queueDropped), id, "queue_full")
				counter(mQueueDrops, float64(q.userDropped), id, "socket_full")
			}
		}
	}
	if p := a.plan.Load(); p != nil {
		gauge(mBuckets, float64(p.Owned(a.settings.Self)))
		serving := 0.0
		if p.Serving {
			serving = 1
		}
		gauge(mServing, serving)
	}
	v := a.members.View()
	byState := map[string]int{"up": 0, "stopped": 0, "draining": 0, "failed": 0, "down": 0}
	for _, n := range v.Nodes {
		byState[string(n.State)]++
	}
	for st, n := range byState {
		gauge(mMembers, float64(n), st)
	}
	q := 0.0
	if v.Quorum {
		q = 1
	}
	gauge(mQuorum, q)
	ms := a.monitor.Status()
	for _, chk := range ms.Checks {
		pass := 0.0
		if chk.State.String() == "passing" {
			pass = 1
		}
		gauge(mChecker, pass, chk.Name, chk.Type)
	}
	gauge(mRestarts, float64(ms.Restarts))
	gauge(mFlows, float64(a.details.flows.Load()))
	if r := a.details.ratios.Load(); r != nil {
		for node, ratio := range *r {
			gauge(mDelivery, ratio, node)
		}
	}
	if h, ok := a.members.HealthScore(); ok {
		gauge(mGossipHealth, float64(h))
	}
}

// metricsHandler serves the agent's metrics and the Go runtime's.
func (a *Agent) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{a: a}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// queueStat is one line of /proc/net/netfilter/nfnetlink_queue.
type queueStat struct {
	id                        uint32
	queueDropped, userDropped uint64
}

// queueStats reads the kernel's NFQUEUE counters (none off Linux or when
// the module is not loaded). Columns: queue, portid, waiting, copy mode,
// copy range, queue dropped, user dropped, last id, 1.
func queueStats() []queueStat {
	f, err := os.Open("/proc/net/netfilter/nfnetlink_queue")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []queueStat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 7 {
			continue
		}
		var q queueStat
		if _, err := fmt.Sscan(fs[0], &q.id); err != nil {
			continue
		}
		q.queueDropped, _ = strconv.ParseUint(fs[5], 10, 64)
		q.userDropped, _ = strconv.ParseUint(fs[6], 10, 64)
		out = append(out, q)
	}
	return out
}
