package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// farm is a lab with nginx and an agent on every node.
type farm struct {
	b      *bench
	l      *lab.Lab
	extra  string      // TOML merged over the lab's default agent config
	agents []*lab.Proc // index 0 = node 1; nil while not running
}

// startFarm builds an n-node lab, starts nginx and an agent (with extra
// merged over the default config) on every node, and waits until every
// agent sees all n nodes up.
func (b *bench) startFarm(n int, extra string) (*farm, error) {
	l, err := b.newLab(n)
	if err != nil {
		return nil, err
	}
	if !l.HaveFarm() {
		return nil, fmt.Errorf("agent binary %s is missing: run `make build` (or pass -farm)", l.FarmBin())
	}
	f := &farm{b: b, l: l, extra: extra, agents: make([]*lab.Proc, n)}
	for i := 1; i <= n; i++ {
		if err := l.StartNginx(i); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= n; i++ {
		if err := f.startAgent(i); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := f.waitUp(n, 60*time.Second); err != nil {
		return nil, err
	}
	b.logf("farm %s converged: %d nodes up after %s", l.ID, n, time.Since(start).Round(time.Millisecond))
	return f, nil
}

func (f *farm) startAgent(i int) error {
	p, err := f.l.StartAgent(i, f.l.NodeConfig(i, f.extra))
	if err != nil {
		return err
	}
	f.agents[i-1] = p
	return nil
}

// killAgent SIGKILLs node i's agent, as a crash would.
func (f *farm) killAgent(i int) error {
	p := f.agents[i-1]
	if p == nil {
		return fmt.Errorf("agent on node %d is not running", i)
	}
	f.agents[i-1] = nil
	return p.Kill()
}

// nodeStatus is the part of `farm status --json` farmbench reads.
type nodeStatus struct {
	Name    string  `json:"name"`
	ID      int     `json:"id"`
	State   string  `json:"state"`
	Buckets int     `json:"buckets"`
	Share   float64 `json:"share"`
}

type farmStatus struct {
	Nodes   []nodeStatus `json:"nodes"`
	Buckets int          `json:"buckets"`
}

// apiStatus reads node i's status straight from its API (the endpoint
// `farm status` calls), without starting a process: cheap enough to poll
// every 50 ms while measuring.
func (f *farm) apiStatus(ctx context.Context, i int) (farmStatus, error) {
	var st farmStatus
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lab.ConsoleListen+"/api/v1/status", nil)
	if err != nil {
		return st, err
	}
	tok, err := f.l.APIToken(i)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.l.HTTPClient(f.l.Node(i).NS, netip.Addr{}).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st, err
}

// waitUp waits until every running agent reports want nodes up, each with
// buckets, and all agree on states and buckets. It polls every 100 ms.
func (f *farm) waitUp(want int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(f.b.ctx, d)
	defer cancel()
	var last error
	for {
		last = f.converged(ctx, want)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if f.b.ctx.Err() != nil {
				return f.b.ctx.Err()
			}
			return fmt.Errorf("farm did not converge to %d nodes up within %s: %w (agent logs: %s/web*/agent.log, kept with -keep)", want, d, last, f.l.RunDir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *farm) converged(ctx context.Context, want int) error {
	var running []int
	for i, p := range f.agents {
		if p != nil && !p.Exited() {
			running = append(running, i+1)
		}
	}
	return f.l.Converged(ctx, running, want)
}

// linkDown cuts node i's link to the switch (its eth0, inside its
// namespace): the node is gone for everybody, and everybody for it.
func (f *farm) linkDown(ctx context.Context, i int) error {
	if _, err := f.l.Exec(ctx, f.l.Node(i).NS, "ip", "link", "set", f.l.Node(i).Link, "down"); err != nil {
		return fmt.Errorf("cut web%d's link: %w", i, err)
	}
	return nil
}

// linkUp brings node i's eth0 back. The kernel drops an interface's IPv6
// addresses when it goes down (keep_addr_on_down is 0), so the node's own
// IPv6 address is added again; the agent must restore what it installed.
func (f *farm) linkUp(ctx context.Context, i int) error {
	n := f.l.Node(i)
	if _, err := f.l.Exec(ctx, n.NS, "ip", "link", "set", n.Link, "up"); err != nil {
		return fmt.Errorf("bring web%d's link up: %w", i, err)
	}
	addr := fmt.Sprintf("%s/%d", n.Addr6, f.l.Subnet6.Bits())
	if _, err := f.l.Exec(ctx, n.NS, "ip", "-6", "addr", "replace", addr, "dev", n.Link, "nodad"); err != nil {
		return fmt.Errorf("restore web%d's IPv6 address: %w", i, err)
	}
	return nil
}

// owner asks the VIP from src (new connection) and returns the answering
// node's name.
func (f *farm) owner(ctx context.Context, src netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return f.l.Get(ctx, src, f.l.VIPURL(src))
}

// steady sends one request from every source until a round has no
// failure (bounded by d) and returns the last round.
func (f *farm) steady(srcs []netip.Addr, d time.Duration) (lab.Result, error) {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(f.b.ctx, 20*time.Second)
		res := f.l.Burst(ctx, srcs, 1, f.l.VIPURL)
		cancel()
		if f.b.ctx.Err() != nil {
			return res, f.b.ctx.Err()
		}
		if len(res.Failures) == 0 {
			return res, nil
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%d of %d requests still fail after %s, first: %s", len(res.Failures), res.Requests, d, res.Failures[0])
		}
		if err := f.b.sleep(200 * time.Millisecond); err != nil {
			return res, err
		}
	}
}

// readNS reads a file inside namespace ns ("" if it cannot be read).
func readNS(ctx context.Context, l *lab.Lab, ns, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, ns, "cat", path)
	if err != nil {
		return ""
	}
	return string(out)
}

// queues reads node i's NFQUEUE counters (none when nothing is bound).
func queues(ctx context.Context, l *lab.Lab, i int) []nfQueue {
	q, _ := parseNFQueue(readNS(ctx, l, l.Node(i).NS, "/proc/net/netfilter/nfnetlink_queue"))
	return q
}

// tcpCounters reads a namespace's /proc/net/snmp and /proc/net/netstat.
func tcpCounters(ctx context.Context, l *lab.Lab, ns string) map[string]int64 {
	m := parseSNMP(readNS(ctx, l, ns, "/proc/net/snmp"))
	for k, v := range parseSNMP(readNS(ctx, l, ns, "/proc/net/netstat")) {
		m[k] = v
	}
	return m
}

// errClass names a failed request's cause in a word, for the tables.
func errClass(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	s := err.Error()
	if strings.Contains(s, "status") {
		return "status"
	}
	return "other"
}
