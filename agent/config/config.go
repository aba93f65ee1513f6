// Package config holds the agent's TOML configuration: its shape, its
// defaults, its validation and the typed values the components take (VIPs,
// Rules, CheckerSpecs, Weight), all produced by one pass when the file is
// parsed. Validation is pure (no host look-ups) so that `farm check
// --offline` gives the same answer on any machine; CheckHost checks the
// config against this host (key file, interfaces, scripts), for `farm check`
// and the agent's start.
package config

import (
	"strings"
	"time"
)

// Config is one node's whole configuration, as read from one TOML file.
// Unknown keys are an error, so a typo never silently falls back to a default.
type Config struct {
	// Node identifies this node in the farm.
	Node Node `toml:"node"`
	// Gossip configures the serf membership layer.
	Gossip Gossip `toml:"gossip"`
	// VIP lists the virtual addresses every node shares.
	VIP []VIP `toml:"vip"`
	// Rule lists which traffic to the VIPs is balanced and how clients are grouped.
	Rule []Rule `toml:"rule"`
	// Filter tunes the local data path.
	Filter Filter `toml:"filter"`
	// App names the scripts that start and stop the local application.
	App App `toml:"app"`
	// Checker lists the probes that watch the local application.
	Checker []Checker `toml:"checker"`
	// Console configures the HTTP API and web console.
	Console Console `toml:"console"`
	// Log configures the agent's log.
	Log Log `toml:"log"`
	// StateDir is where the agent keeps state that must survive a restart
	// (an operator's stop). Default /var/lib/farm.
	StateDir string `toml:"state_dir"`

	// typed holds the parsed values behind VIPs, Rules, CheckerSpecs and
	// Weight; the TOML codec ignores it (unexported).
	typed typed
}

// Node is this node's identity.
type Node struct {
	// Name is unique in the farm; it is the serf node name.
	Name string `toml:"name"`
	// ID is a unique small integer (1..250). It tags this node's flows in
	// conntrack marks, so it must stay the same across restarts.
	ID int `toml:"id"`
	// Weight is this node's share of buckets relative to the others; 0 makes
	// the node a standby that serves only when no weighted node is up.
	// Default 100.
	Weight *int `toml:"weight"`
	// DrainTimeout bounds a drain: a draining node becomes stopped when its
	// last flow ends or when this much time has passed. Default 5m.
	DrainTimeout Duration `toml:"drain_timeout"`
}

// Gossip configures serf.
type Gossip struct {
	// Bind is the ip:port serf listens on (TCP and UDP).
	Bind string `toml:"bind"`
	// Advertise is the ip:port peers should use, when it differs from Bind.
	Advertise string `toml:"advertise"`
	// Join lists peers to contact at start; retried until one answers.
	Join []string `toml:"join"`
	// KeyFile holds the gossip key, base64: 32 bytes (AES-256, what farm
	// keygen makes), or 16 or 24 (AES-128/192, which memberlist also
	// accepts). Nodes without it cannot join. It must not be readable by
	// group or others (chmod 600; CheckHost says so).
	KeyFile string `toml:"key_file"`
	// RetryInterval is the pause between join attempts. Default 2s.
	RetryInterval Duration `toml:"retry_interval"`
	// ProbeInterval is memberlist's failure-detector probe interval. Default 100ms: with the suspicion multiplier, a dead node is declared so in well under a second.
	ProbeInterval Duration `toml:"probe_interval"`
	// ProbeTimeout is how long a probe waits for an ack. Default 50ms (a LAN answers in well under 1 ms).
	ProbeTimeout Duration `toml:"probe_timeout"`
	// SuspicionMult scales how long a suspect node has to refute. Default 2.
	SuspicionMult int `toml:"suspicion_mult"`
	// HandoffDelay is how long a node waits before answering for buckets it
	// takes over from a live node (join, start, weight change), so that the
	// previous owner has surely let go: no SYN is answered twice. Clients
	// whose SYN falls in the gap retransmit it. Default 300ms.
	HandoffDelay Duration `toml:"handoff_delay"`
	// SwitchLead is how far ahead a node announces the switch time of its
	// own planned changes (join, start, stop, drain, weight), so every node
	// hears of the change before it takes effect and the buckets it moves
	// go over at that time without the handoff delay's gap. A node that
	// hears after the switch time falls back to the handoff delay. It
	// should exceed handoff_delay plus gossip's spread. 0 announces nothing.
	// Default 500ms.
	SwitchLead Duration `toml:"switch_lead"`
	// SwitchMargin is how long after the switch time the gaining node
	// starts, while the losing node stops at the switch time: it must cover
	// the skew between the nodes' clocks (NTP-synchronized), or both answer
	// the SYNs in between. New connections in the margin plus the skew
	// retransmit their SYN. Default 5ms.
	SwitchMargin Duration `toml:"switch_margin"`
	// Witness is an address (ip or ip:port) a node that lost its peers must
	// still reach to keep serving; it breaks ties in even splits.
	Witness string `toml:"witness"`
	// Bootstrap lets this node serve alone when it remembers no farm (first
	// start, empty state_dir) and no peer of its join list answers within a
	// few seconds: set it on the first node of a new farm. Without it, such a
	// node waits for a peer, so a node started inside a partition never
	// serves alone. A node that remembers its farm needs a majority of it
	// (or the witness) either way. Default false.
	Bootstrap bool `toml:"bootstrap"`
}

// VIP is one virtual address shared by all nodes.
type VIP struct {
	// Address is an IPv4 or IPv6 address, without prefix length.
	Address string `toml:"address"`
	// Interface is the physical interface facing the clients.
	Interface string `toml:"interface"`
	// Mode is "vmac" (flooded unicast virtual MAC, the default),
	// "multicast" (03:bf multicast virtual MAC, Linux nodes only) or "igmp"
	// (the MAC of an IP multicast group every node joins, as Windows NLB's
	// IGMP mode and the Windows engine's multicast mode: the mode of a farm
	// mixing Linux and Windows nodes); case and surrounding spaces are
	// ignored.
	Mode string `toml:"mode"`
}

// Rule says which traffic to the VIPs is balanced and how clients group.
type Rule struct {
	// Proto is "tcp" or "udp".
	Proto string `toml:"proto"`
	// Ports is a list of ports and ranges: "80,443,8000-8100".
	Ports string `toml:"ports"`
	// Affinity is "ip" (client IP, the default), "ip-port" (no affinity) or
	// "network" (client /24 for IPv4, /64 for IPv6).
	Affinity string `toml:"affinity"`
}

// Filter tunes the local data path.
type Filter struct {
	// Engine decides new flows: on Linux "kernel" (nftables sets decide in
	// the kernel) or "nfqueue" (the first packet of each flow goes to the
	// agent over NFQUEUE); on Windows "windivert" (every packet to a balanced
	// VIP port goes through the agent). All use the same bucket function, so
	// a farm may mix them. Default kernel.
	Engine string `toml:"engine"`
	// Queue is the first NFQUEUE number used. Default 4200.
	Queue int `toml:"queue"`
	// ResetWindow is how long, after taking over a dead node's buckets,
	// this node answers the dead node's orphaned connections with a TCP
	// reset so their clients reconnect at once instead of hanging. During
	// the window the other nodes' mid-flow packets go through the queue
	// too (slower), so keep it about as long as the application's
	// keep-alive timeout. 0 disables it. Default 30s.
	ResetWindow Duration `toml:"reset_window"`
	// Queues is how many queues (and reader goroutines) share the SYNs. Default 1.
	Queues int `toml:"queues"`
}

// App holds the application's scripts.
type App struct {
	// Start starts the local application; run when the node starts serving.
	// A script (run directly when executable, else under /bin/sh; on
	// Windows .ps1 under PowerShell, .cmd/.bat under cmd) or, when no file
	// has that name, a command line (/bin/sh -c, cmd /C).
	Start string `toml:"start"`
	// Stop stops the local application; the same forms as Start.
	Stop string `toml:"stop"`
	// Timeout bounds each script run. Default 60s (script.DefaultTimeout).
	Timeout Duration `toml:"timeout"`
	// MaxRestarts is how many restarts a failing checker may trigger within
	// RestartWindow before the node stays failed (SafeKit's maxloop), so an
	// application that cannot come up does not loop for ever. Default 3
	// (checkers.DefaultMaxRestarts), at most 1000.
	MaxRestarts int `toml:"max_restarts"`
	// RestartWindow is the period MaxRestarts counts over. Default 24h
	// (checkers.DefaultWindow), at least 1m.
	RestartWindow Duration `toml:"restart_window"`
}

// Checker is one probe of the local application.
type Checker struct {
	// Name is unique among this node's checkers; logs and the API use it.
	Name string `toml:"name"`
	// Type is tcp | http | process | script | interface | vip.
	Type string `toml:"type"`
	// Target is what the probe looks at: host:port (tcp), an http(s) URL
	// (http), a process name or pid file (process), a command (script), an
	// interface name (interface). Optional for vip, where it names one of the
	// configured VIP addresses (default: the first [[vip]] address).
	Target string `toml:"target,omitempty"`
	// Interval is the pause between probes. Default 1s
	// (checkers.DefaultInterval), at least 100ms (checkers.MinInterval) so a
	// script checker cannot turn into a fork bomb.
	Interval Duration `toml:"interval"`
	// Timeout bounds one probe; it must end before the next one is due.
	// Default Interval/2.
	Timeout Duration `toml:"timeout"`
	// Fall is how many consecutive failures mark the application failed, so
	// one lost probe does not move clients. Default 2 (checkers.DefaultFall).
	Fall int `toml:"fall"`
	// Rise is how many consecutive successes mark it passing again, so a
	// flapping application does not keep taking clients back. Default 2
	// (checkers.DefaultRise).
	Rise int `toml:"rise"`
	// Action is what a failure triggers: restart (stop and start scripts,
	// then back in the farm) | stop (leave the farm until an operator starts
	// the node) | wait (leave while failing, come back by itself when
	// passing; no scripts) | none (report only). restart needs app.start and
	// app.stop. Default: restart for tcp, http, process and script checkers
	// when app.start and app.stop are both set; otherwise wait. Interface and
	// vip checkers always default to wait: a restart cannot bring a link or
	// an address back.
	Action string `toml:"action"`
	// Expect is the HTTP status an http checker wants. Default 200
	// (checkers.DefaultExpect).
	Expect int `toml:"expect,omitzero"`
	// Body is a substring the http response body must contain.
	Body string `toml:"body,omitempty"`
	// Host overrides the Host header of an http checker.
	Host string `toml:"host,omitempty"`
	// SkipVerify skips TLS certificate verification for https targets.
	SkipVerify bool `toml:"skip_verify,omitempty"`
}

// Console configures the HTTP API and console.
type Console struct {
	// Listen is the ip:port of the API and console. Default 127.0.0.1:9010.
	Listen string `toml:"listen"`
	// PasswordFile holds a bcrypt hash (farm passwd makes one); required
	// when Listen is not loopback.
	PasswordFile string `toml:"password_file"`
	// TLSCert and TLSKey, set together, serve the console over HTTPS (farm
	// cert makes a self-signed pair).
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// MetricsPublic serves /metrics without a session or token, for a
	// Prometheus that cannot send one. Default false.
	MetricsPublic bool `toml:"metrics_public"`
}

// Log configures the agent's log (on stderr).
type Log struct {
	// Format is "text" (the default) or "json".
	Format string `toml:"format"`
	// Level is "debug", "info" (the default), "warn" or "error".
	Level string `toml:"level"`
}

// Duration is a time.Duration that reads "1s", "500ms" from TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText prints the duration the way people write it: "1m", not "1m0s".
func (d Duration) MarshalText() ([]byte, error) {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return []byte(s), nil
}
