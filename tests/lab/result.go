package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Result sums up a Burst: who answered, per node and per client source.
type Result struct {
	// Requests is how many requests were attempted.
	Requests int
	// PerNode counts successful answers by body (the node name).
	PerNode map[string]int
	// PerSource counts, for each source address, the answers by node; with
	// ip affinity every source should have exactly one node.
	PerSource map[netip.Addr]map[string]int
	// Failures lists every request that did not get a 200.
	Failures []Failure
}

// Failure is one failed request.
type Failure struct {
	Src netip.Addr
	URL string
	Err string
}

func (f Failure) String() string { return fmt.Sprintf("%s -> %s: %s", f.Src, f.URL, f.Err) }

// OK is the number of successful requests.
func (r Result) OK() int { return r.Requests - len(r.Failures) }

// Split lists the sources answered by more than one node, sorted: with ip
// affinity and a stable farm it must be empty.
func (r Result) Split() []netip.Addr {
	var out []netip.Addr
	for src, nodes := range r.PerSource {
		if len(nodes) > 1 {
			out = append(out, src)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Nodes lists the answering nodes, sorted by name with numbers in order
// (web2 before web10).
func (r Result) Nodes() []string {
	var out []string
	for n := range r.PerNode {
		out = append(out, n)
	}
	slices.SortFunc(out, compareNames)
	return out
}

// Table prints the per-node distribution: answers, share of the successful
// ones, and how many sources each node served.
func (r Result) Table() string {
	var b strings.Builder
	ok := r.OK()
	fmt.Fprintf(&b, "%-10s %8s %7s %8s\n", "node", "answers", "share", "sources")
	for _, n := range r.Nodes() {
		srcs := 0
		for _, per := range r.PerSource {
			if per[n] > 0 {
				srcs++
			}
		}
		share := 0.0
		if ok > 0 {
			share = 100 * float64(r.PerNode[n]) / float64(ok)
		}
		fmt.Fprintf(&b, "%-10s %8d %6.1f%% %8d\n", n, r.PerNode[n], share, srcs)
	}
	fmt.Fprintf(&b, "%-10s %8d\n", "total ok", ok)
	fmt.Fprintf(&b, "%-10s %8d\n", "failed", len(r.Failures))
	fmt.Fprintf(&b, "%-10s %8d\n", "split src", len(r.Split()))
	return b.String()
}

// Merge adds o's counts to r, so bursts over several families or rounds can
// be reported together.
func (r *Result) Merge(o Result) {
	r.Requests += o.Requests
	for n, c := range o.PerNode {
		if r.PerNode == nil {
			r.PerNode = map[string]int{}
		}
		r.PerNode[n] += c
	}
	for src, per := range o.PerSource {
		if r.PerSource == nil {
			r.PerSource = map[netip.Addr]map[string]int{}
		}
		if r.PerSource[src] == nil {
			r.PerSource[src] = map[string]int{}
		}
		for n, c := range per {
			r.PerSource[src][n] += c
		}
	}
	r.Failures = append(r.Failures, o.Failures...)
}

// collector gathers a Result from concurrent requests.
type collector struct {
	mu sync.Mutex
	r  Result
}

func newCollector() *collector {
	return &collector{r: Result{PerNode: map[string]int{}, PerSource: map[netip.Addr]map[string]int{}}}
}

func (c *collector) add(src netip.Addr, url, body string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Requests++
	if err != nil {
		c.r.Failures = append(c.r.Failures, Failure{Src: src, URL: url, Err: err.Error()})
		return
	}
	c.r.PerNode[body]++
	per := c.r.PerSource[src]
	if per == nil {
		per = map[string]int{}
		c.r.PerSource[src] = per
	}
	per[body]++
}

func (c *collector) result() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// compareNames orders "web2" before "web10": common prefix, then by number.
func compareNames(a, b string) int {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb || na < 0 || nb < 0 {
		return strings.Compare(a, b)
	}
	return na - nb
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || len(s)-i > 6 {
		return s, -1
	}
	n := 0
	for _, c := range s[i:] {
		n = n*10 + int(c-'0')
	}
	return s[:i], n
}
