// Package checkers watches the local application and reacts when it fails.
// Probes (tcp, http, process, script, interface, vip) only say pass or fail;
// a Smoother turns their results into a steady passing/failing state (flap
// smoothing); a Policy decides what a state change means for the node
// (leave the farm, restart the application, wait, stay out); a Monitor runs
// all of it and talks to the rest of the agent through the small Node
// interface and the events ring. The split follows Consul's agent/checks and
// SafeKit's checkers: the pure parts are table-tested, the OS parts are thin.
package checkers

import "time"

// Checker types, the values of Spec.Type.
const (
	// TypeTCP passes when a TCP connection to Target (host:port) opens.
	TypeTCP = "tcp"
	// TypeHTTP passes when a GET of Target (http:// or https:// URL) answers
	// with the expected status and, if set, a body containing Body.
	TypeHTTP = "http"
	// TypeProcess passes when the process named by Target runs. A Target
	// containing a path separator is a pid file; anything else is a process
	// name (Linux: /proc/*/comm or argv[0]; Windows: a service name).
	TypeProcess = "process"
	// TypeScript passes when the script at Target exits with 0.
	TypeScript = "script"
	// TypeInterface passes when the network interface Target is up with a
	// link (carrier).
	TypeInterface = "interface"
	// TypeVIP passes while the virtual address Target is still configured
	// on an interface of this host.
	TypeVIP = "vip"
)

// Actions, the values of Spec.Action: what a checker's failure does.
const (
	// ActionRestart makes the node leave the farm, runs the stop then the
	// start script, and rejoins once every checker passes again. At most
	// AppScripts.MaxRestarts restarts per AppScripts.Window; beyond that it
	// acts as ActionStop. The config's default for application checkers
	// (tcp, http, process, script) when the app has scripts.
	ActionRestart = "restart"
	// ActionStop makes the node leave the farm and stay failed until an
	// operator starts it again (Monitor.Reset).
	ActionStop = "stop"
	// ActionWait makes the node leave the farm while the checker fails and
	// rejoin by itself when every checker passes, without running scripts:
	// for what a restart cannot fix (a link down, a lost address). The
	// config's default for interface and vip checkers (SafeKit's "wait"),
	// and for every checker when the app has no scripts.
	ActionWait = "wait"
	// ActionNone only records an event.
	ActionNone = "none"
)

// Defaults and limits of checkers. This package owns these numbers; the
// config applies them (agent/config fills every Spec field) and validates
// against them, so there is one value per fact.
const (
	// MinInterval is the shortest interval a checker may run at, so a typo
	// cannot turn a script checker into a fork bomb; the config refuses
	// shorter ones. It is also the shortest pause between two probes of
	// one checker.
	MinInterval = 100 * time.Millisecond
	// DefaultInterval is the pause between probes when the config sets none.
	DefaultInterval = time.Second
	// DefaultFall is how many failures in a row make a passing checker
	// failing: 2, so one lost probe does not move clients, while a dead
	// application is out within two intervals.
	DefaultFall = 2
	// DefaultRise is how many successes in a row make a failing checker
	// passing, so a flapping application does not keep taking clients back.
	DefaultRise = 2
	// DefaultExpect is the HTTP status an http checker wants by default.
	DefaultExpect = 200
)

// Spec is one checker's complete settings. agent/config makes them
// (Config.CheckerSpecs) with every default applied and every value
// validated; this package takes them as given and does not check them again.
type Spec struct {
	// Name identifies the checker in events and status; unique per node
	// (the recovery policy tells checkers apart by name).
	Name string
	// Type is one of the Type* constants.
	Type string
	// Target is what to probe; its meaning depends on Type. For a vip
	// checker it is the address to look for.
	Target string
	// Interval is the time between two probes, at least MinInterval.
	Interval time.Duration
	// Timeout bounds one probe; shorter than Interval.
	Timeout time.Duration
	// Fall is how many failures in a row make the checker failing (>= 1).
	Fall int
	// Rise is how many successes in a row make the checker passing (>= 1).
	Rise int
	// Action is one of the Action* constants.
	Action string
	// Expect is the HTTP status an http checker wants.
	// Redirects are not followed, so a redirecting page needs Expect = 301 or 302.
	Expect int
	// Body, when set, must appear in the first MaxBody bytes of the
	// HTTP response body.
	Body string
	// Host overrides the HTTP Host header (and the TLS server name).
	Host string
	// SkipVerify skips TLS certificate verification for https targets.
	SkipVerify bool
	// VIP is the farm's first virtual address. The config fills it, and
	// fills Target with it for a vip checker written without a target;
	// probes read Target only.
	VIP string
}
