package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Faults and agent probes for soak tests (tests/chaos): each acts on one
// node of the lab and touches nothing outside the lab's namespaces and the
// processes it recorded.

// AgentGet GETs path (e.g. "/api/v1/status?detail=0") from node i's agent
// API inside the node's namespace, with the node's API token, and decodes
// the JSON answer into v.
func (l *Lab) AgentGet(ctx context.Context, i int, path string, v any) error {
	b, err := l.agentGet(ctx, i, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("web%d API %s: %w: %.200s", i, path, err, b)
	}
	return nil
}

func (l *Lab) agentGet(ctx context.Context, i int, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ConsoleListen+path, nil)
	if err != nil {
		return nil, err
	}
	tok, err := l.APIToken(i)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := l.HTTPClient(l.Node(i).NS, netip.Addr{}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("web%d API %s: %w", i, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("web%d API %s: %w", i, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("web%d API %s: status %d: %.200s", i, path, resp.StatusCode, b)
	}
	return b, nil
}

// AgentMetrics scrapes node i's /metrics and returns the samples without
// labels (go_goroutines, process_open_fds, ...) by name.
func (l *Lab) AgentMetrics(ctx context.Context, i int) (map[string]float64, error) {
	b, err := l.agentGet(ctx, i, "/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(b), nil
}

// ParseMetrics reads the unlabelled samples of a Prometheus text exposition.
func ParseMetrics(b []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// NginxRunning reports whether node i's nginx master runs (by its pid file,
// checked against its command line).
func (l *Lab) NginxRunning(i int) bool {
	_, ok := l.nginxPid(i)
	return ok
}

// KillNginx SIGKILLs node i's nginx master and its direct children (a
// crash: no clean-up, the pid file stays) and waits up to 5 s until they are
// gone. It returns the PIDs it killed.
func (l *Lab) KillNginx(i int) ([]int, error) {
	master, ok := l.nginxPid(i)
	if !ok {
		return nil, fmt.Errorf("kill nginx on web%d: not running", i)
	}
	kill := []int{master}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == master {
			continue
		}
		if ppid, ok := procPPID(pid); ok && ppid == master {
			kill = append(kill, pid)
		}
	}
	for _, pid := range kill {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return kill, fmt.Errorf("kill nginx pid %d on web%d: %w", pid, i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range kill {
		for !procGone(pid) && time.Now().Before(deadline) {
			time.Sleep(pollInterval)
		}
		if !procGone(pid) {
			return kill, fmt.Errorf("nginx pid %d on web%d alive 5s after SIGKILL", pid, i)
		}
	}
	return kill, nil
}

// procPPID returns field 4 of /proc/PID/stat.
func procPPID(pid int) (int, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// SetLink sets node i's port on the switch down (a cut cable: the node's
// eth0 loses carrier) or up again.
func (l *Lab) SetLink(ctx context.Context, i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if _, err := l.Exec(ctx, l.Switch.NS, "ip", "link", "set", l.Node(i).Port, state); err != nil {
		return fmt.Errorf("link of web%d %s: %w", i, state, err)
	}
	return nil
}

// isolateTable is the nft table Isolate adds to a node.
const isolateTable = "labisolate"

// Isolate drops, on node i, every packet to and from the addresses of the
// nodes in peers (so gossip between them stops both ways while clients still
// reach every node), and when witness is valid also node i's ICMP echo
// requests to it. Heal removes it with Unisolate. A node can be isolated once
// at a time.
func (l *Lab) Isolate(ctx context.Context, i int, peers []int, witness netip.Addr) error {
	var v4, v6 []string
	for _, p := range peers {
		n := l.Node(p)
		v4 = append(v4, n.Addr4.String())
		v6 = append(v6, n.Addr6.String())
	}
	if len(peers) == 0 {
		return fmt.Errorf("isolate web%d: no peers", i)
	}
	set4, set6 := "{ "+strings.Join(v4, ", ")+" }", "{ "+strings.Join(v6, ", ")+" }"
	rules := fmt.Sprintf(`table inet %s {
  chain in { type filter hook input priority -50; policy accept;
    ip saddr %s drop
    ip6 saddr %s drop
  }
  chain out { type filter hook output priority -50; policy accept;
    ip daddr %s drop
    ip6 daddr %s drop
`, isolateTable, set4, set6, set4, set6)
	if witness.IsValid() {
		if witness.Is4() {
			rules += fmt.Sprintf("    ip daddr %s icmp type echo-request drop\n", witness)
		} else {
			rules += fmt.Sprintf("    ip6 daddr %s icmpv6 type echo-request drop\n", witness)
		}
	}
	rules += "  }\n}\n"
	if out, err := l.Exec(ctx, l.Node(i).NS, "sh", "-c", "printf '%s' \"$0\" | nft -f -", rules); err != nil {
		return fmt.Errorf("isolate web%d: %w: %s", i, err, out)
	}
	return nil
}

// Unisolate removes what Isolate added on node i (nil if nothing was).
func (l *Lab) Unisolate(ctx context.Context, i int) error {
	if _, err := l.Exec(ctx, l.Node(i).NS, "nft", "list", "table", "inet", isolateTable); err != nil {
		return nil
	}
	if out, err := l.Exec(ctx, l.Node(i).NS, "nft", "delete", "table", "inet", isolateTable); err != nil {
		return fmt.Errorf("unisolate web%d: %w: %s", i, err, out)
	}
	return nil
}
