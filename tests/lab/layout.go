package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RunBase is where every lab keeps its run directory (RunBase/ID): configs,
// logs, pid files and the lab.json manifest. It is on /run so that, like the
// namespaces in /run/netns, it does not outlive a reboot.
const RunBase = "/run/farmlab"

// Limits of the address plan: nodes take .11-.99 of the first /24, the VIP is
// .100, and each client network is one /24 (one /64 for IPv6).
const (
	MaxNodes      = 89
	MaxClientNets = 200
	maxPerNet     = 254
)

// Options says what lab to build. The zero value is a 3-node lab with 64
// client source addresses per address family.
type Options struct {
	// Nodes is the number of node namespaces (web1..webN). Default 3.
	Nodes int
	// ClientAddrs is how many extra source addresses the client gets per
	// family (IPv4 and IPv6 alike), so tests can play many clients. Default 64.
	ClientAddrs int
	// ClientNets spreads the client's extra addresses round-robin over this
	// many /24 (IPv4) and /64 (IPv6) networks, so "network" affinity has more
	// than one client network to hash. Default 1.
	ClientNets int
	// Prefix starts every name the lab creates: [a-z][a-z0-9]{0,9}. Use one
	// prefix per test package so CleanupPrefix never touches a live lab of
	// another package. Default "lab".
	Prefix string
	// FarmBin is the agent binary StartAgent runs. Default <repo>/bin/farm,
	// where <repo> is found from the working directory upwards.
	FarmBin string
	// RequestTimeout bounds one request of Get and Burst. Default 2s: long
	// enough for one SYN retransmission (1 s), short enough to see failures.
	RequestTimeout time.Duration
	// StopTimeout is how long Proc.Stop waits after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
	// KeepRunDir leaves the run directory (logs, configs) after Close, for
	// looking at a failed run by hand.
	KeepRunDir bool
}

func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.ClientAddrs == 0 {
		o.ClientAddrs = 64
	}
	if o.ClientNets == 0 {
		o.ClientNets = 1
	}
	if o.Prefix == "" {
		o.Prefix = "lab"
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	return o
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

func (o Options) validate() error {
	var errs []error
	if !prefixRE.MatchString(o.Prefix) {
		errs = append(errs, fmt.Errorf("lab prefix %q: want 1-10 characters of [a-z0-9] starting with a letter", o.Prefix))
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("lab nodes %d: want 1..%d", o.Nodes, MaxNodes))
	}
	if o.ClientNets < 1 || o.ClientNets > MaxClientNets {
		errs = append(errs, fmt.Errorf("lab client nets %d: want 1..%d", o.ClientNets, MaxClientNets))
	}
	if o.ClientAddrs < 0 || o.ClientAddrs > o.ClientNets*maxPerNet {
		errs = append(errs, fmt.Errorf("lab client addrs %d: want 0..%d (254 per client net; raise ClientNets)", o.ClientAddrs, o.ClientNets*maxPerNet))
	}
	return errors.Join(errs...)
}

// Host is one machine of the lab: a namespace with eth0 on the switch.
type Host struct {
	// Name is the node name (web1..) or "client".
	Name string `json:"name"`
	// Index is the node number (1..N) and the agent's node id; 0 for the client.
	Index int `json:"index"`
	// NS is the network namespace name (ip netns).
	NS string `json:"ns"`
	// Link is the host's interface on the switch, inside NS.
	Link string `json:"link"`
	// Port is the bridge port of this host in the switch namespace; capture
	// there to see exactly what the switch sends this host.
	Port string `json:"port"`
	// MAC is Link's fixed address, so captures and bridge tables read easily.
	MAC string `json:"mac"`
	// Addr4 and Addr6 are the host's own addresses (not the VIP).
	Addr4 netip.Addr `json:"addr4"`
	Addr6 netip.Addr `json:"addr6"`
}

// Switch is the namespace that plays the Ethernet switch.
type Switch struct {
	NS     string `json:"ns"`
	Bridge string `json:"bridge"`
}

// Owner identifies the process that built a lab, so CleanupStale can tell a
// crashed run from a live one (a PID alone could have been reused).
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Layout is the lab's whole plan: names and addresses. It is computed before
// anything is created and saved as RunDir/lab.json, so a later process (the
// farmlab CLI, a cleanup) can find and use the lab.
type Layout struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
	RunDir string `json:"run_dir"`
	// FarmBinary is the agent binary StartAgent runs.
	FarmBinary string `json:"farm_bin"`
	Owner      Owner  `json:"owner"`
	Switch     Switch `json:"switch"`
	// Nodes holds node i at Nodes[i-1]; use Node(i).
	Nodes  []Host `json:"nodes"`
	Client Host   `json:"client"`
	// Subnet4 and Subnet6 are the on-link prefixes of every eth0.
	Subnet4 netip.Prefix `json:"subnet4"`
	Subnet6 netip.Prefix `json:"subnet6"`
	// VIP4 and VIP6 are the farm's virtual addresses; nobody holds them until
	// an agent claims them.
	VIP4 netip.Addr `json:"vip4"`
	VIP6 netip.Addr `json:"vip6"`
	// ClientAddrs4 and ClientAddrs6 are the client's extra source addresses.
	ClientAddrs4 []netip.Addr `json:"client_addrs4"`
	ClientAddrs6 []netip.Addr `json:"client_addrs6"`
}

// The lab's address plan. Nodes, VIP and the client's own address sit in the
// first /24 (/64); client source networks follow in 10.213.1.0/24,
// 10.213.2.0/24... (fd00:213:0:1::/64, ...). Every eth0 has the /16 (/48) as
// its on-link prefix, so every address reaches every other by ARP/ND alone.
var (
	subnet4 = netip.MustParsePrefix("10.213.0.0/16")
	subnet6 = netip.MustParsePrefix("fd00:213::/48")
)

const (
	linkName   = "eth0"
	bridgeName = "br0"
)

// plan computes the layout of lab id from validated, defaulted options.
func plan(o Options, id, runDir string) Layout {
	l := Layout{
		ID:         id,
		Prefix:     o.Prefix,
		RunDir:     runDir,
		FarmBinary: o.FarmBin,
		Switch:     Switch{NS: id + "-sw", Bridge: bridgeName},
		Subnet4:    subnet4,
		Subnet6:    subnet6,
		VIP4:       netip.MustParseAddr("10.213.0.100"),
		VIP6:       netip.MustParseAddr("fd00:213::100"),
	}
	for i := 1; i <= o.Nodes; i++ {
		name := "web" + strconv.Itoa(i)
		// Node i is .1i and ::1i: the last group of the IPv6 address reads
		// like the last byte of the IPv4 one.
		last := 10 + i
		l.Nodes = append(l.Nodes, Host{
			Name:  name,
			Index: i,
			NS:    id + "-" + name,
			Link:  linkName,
			Port:  "p" + strconv.Itoa(i),
			MAC:   fmt.Sprintf("02:1a:b0:00:00:%02x", i),
			Addr4: netip.AddrFrom4([4]byte{10, 213, 0, byte(last)}),
			Addr6: netip.MustParseAddr("fd00:213::" + strconv.Itoa(last)),
		})
	}
	l.Client = Host{
		Name:  "client",
		NS:    id + "-client",
		Link:  linkName,
		Port:  "pc",
		MAC:   "02:1a:b0:00:00:c8",
		Addr4: netip.MustParseAddr("10.213.0.200"),
		Addr6: netip.MustParseAddr("fd00:213::200"),
	}
	for k := 0; k < o.ClientAddrs; k++ {
		net, host := 1+k%o.ClientNets, 1+k/o.ClientNets
		l.ClientAddrs4 = append(l.ClientAddrs4, netip.AddrFrom4([4]byte{10, 213, byte(net), byte(host)}))
		a6 := [16]byte{0xfd, 0x00, 0x02, 0x13, 0, 0, byte(net >> 8), byte(net)}
		a6[14], a6[15] = byte(host>>8), byte(host)
		l.ClientAddrs6 = append(l.ClientAddrs6, netip.AddrFrom16(a6))
	}
	return l
}

// Node returns node i (1-based). It panics on a number outside 1..N: that is
// a bug in the test, not a condition to handle.
func (l *Layout) Node(i int) Host {
	if i < 1 || i > len(l.Nodes) {
		panic(fmt.Sprintf("lab: node %d out of range 1..%d", i, len(l.Nodes)))
	}
	return l.Nodes[i-1]
}

// Namespaces lists every namespace of the lab, switch first.
func (l *Layout) Namespaces() []string {
	out := []string{l.Switch.NS}
	for _, n := range l.Nodes {
		out = append(out, n.NS)
	}
	return append(out, l.Client.NS)
}

// ResolveNS turns a friendly host name into a namespace name: "client",
// "switch", "web2", "2" or a full namespace name of this lab.
func (l *Layout) ResolveNS(name string) (string, error) {
	switch name {
	case "client", l.Client.NS:
		return l.Client.NS, nil
	case "switch", "sw", l.Switch.NS:
		return l.Switch.NS, nil
	}
	for _, n := range l.Nodes {
		if name == n.Name || name == n.NS || name == strconv.Itoa(n.Index) {
			return n.NS, nil
		}
	}
	return "", fmt.Errorf("lab %s has no host %q (want client, switch, web1..web%d or 1..%d)", l.ID, name, len(l.Nodes), len(l.Nodes))
}

// NodeByMAC finds the node whose eth0 has mac, so a capture can name nodes.
func (l *Layout) NodeByMAC(mac string) (Host, bool) {
	mac = strings.ToLower(mac)
	for _, n := range l.Nodes {
		if n.MAC == mac {
			return n, true
		}
	}
	if l.Client.MAC == mac {
		return l.Client, true
	}
	return Host{}, false
}

// VIPFor returns the VIP of src's address family.
func (l *Layout) VIPFor(src netip.Addr) netip.Addr {
	if src.Is4() {
		return l.VIP4
	}
	return l.VIP6
}

// URL builds http://addr/path with IPv6 brackets where needed.
func URL(addr netip.Addr, path string) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + netip.AddrPortFrom(addr, 80).String() + path
}

// VIPURL is the URL of the VIP in src's family; it fits Burst's url argument.
func (l *Layout) VIPURL(src netip.Addr) string { return URL(l.VIPFor(src), "/") }

// Sources returns the first n client source addresses of each family, IPv4
// first (n <= 0 or larger than available means all of them).
func (l *Layout) Sources(n int) []netip.Addr {
	take := func(a []netip.Addr) []netip.Addr {
		if n <= 0 || n > len(a) {
			return a
		}
		return a[:n]
	}
	out := append([]netip.Addr(nil), take(l.ClientAddrs4)...)
	return append(out, take(l.ClientAddrs6)...)
}

// NodeDir is node i's directory in the run dir: agent config and log, agent
// state, nginx files.
func (l *Layout) NodeDir(i int) string { return filepath.Join(l.RunDir, l.Node(i).Name) }

// GossipKeyPath is the shared gossip key file every node's config names.
func (l *Layout) GossipKeyPath() string { return filepath.Join(l.RunDir, "gossip.key") }

// AgentConfigPath is where StartAgent writes node i's config.
func (l *Layout) AgentConfigPath(i int) string { return filepath.Join(l.NodeDir(i), "agent.toml") }

// AgentLogPath is where node i's agent output goes (appended across restarts).
func (l *Layout) AgentLogPath(i int) string { return filepath.Join(l.NodeDir(i), "agent.log") }

// NginxDir is node i's nginx prefix: config, pid file, logs, temp dirs.
func (l *Layout) NginxDir(i int) string { return filepath.Join(l.NodeDir(i), "nginx") }

// NginxStartScript is a shell script that starts node i's nginx (daemonized)
// unless it already runs: use it as the agent's [app] start in recovery tests.
func (l *Layout) NginxStartScript(i int) string { return filepath.Join(l.NginxDir(i), "start.sh") }

// NginxStopScript stops node i's nginx, whoever started it.
func (l *Layout) NginxStopScript(i int) string { return filepath.Join(l.NginxDir(i), "stop.sh") }

func (l *Layout) pidDir() string       { return filepath.Join(l.RunDir, "pids") }
func (l *Layout) manifestPath() string { return filepath.Join(l.RunDir, "lab.json") }
func (l *Layout) nginxConfPath(i int) string {
	return filepath.Join(l.NginxDir(i), "nginx.conf")
}
func (l *Layout) nginxPidPath(i int) string { return filepath.Join(l.NginxDir(i), "nginx.pid") }

// idRE matches the names a lab of prefix p owns: p + 4 hex digits, then
// either nothing (the ID, the run dir) or "-host" (a namespace). The fixed
// length keeps prefix "lab" from matching a lab of prefix "laba".
func ownedBy(prefix, name string) (id string, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found || len(rest) < 4 {
		return "", false
	}
	for _, c := range rest[:4] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", false
		}
	}
	if len(rest) > 4 && rest[4] != '-' {
		return "", false
	}
	return prefix + rest[:4], true
}

// StateDir is node i's agent state_dir (NodeConfig's default).
func (l *Layout) StateDir(i int) string { return filepath.Join(l.NodeDir(i), "state") }

// APIToken reads node i's agent API token (the agent writes it at start).
func (l *Layout) APIToken(i int) (string, error) {
	b, err := os.ReadFile(filepath.Join(l.StateDir(i), "api.token"))
	if err != nil {
		return "", fmt.Errorf("web%d's API token: %w", i, err)
	}
	return strings.TrimSpace(string(b)), nil
}
