// Package checkers watches the local application and reacts when it fails.
// Probes (tcp, http, process, script, interface, vip) only say pass or fail;
// a Smoother turns their results into a steady passing/failing state (flap
// smoothing); a Policy decides what a state change means for the node
// (leave the farm, restart the application, wait, stay out); a Monitor runs
// all of it and talks to the rest of the agent through the small Node
// interface and the events ring. The split follows Consul's agent/checks and
// SafeKit's checkers: the pure parts are table-tested, the OS parts are thin.
package checkers

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"
)

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
	// TypeVIP passes while the virtual address (Target, or Spec.VIP when
	// Target is empty) is still configured on an interface of this host.
	TypeVIP = "vip"
)

// Actions, the values of Spec.Action: what a checker's failure does.
const (
	// ActionRestart makes the node leave the farm, runs the stop then the
	// start script, and rejoins once every checker passes again. At most
	// AppScripts.MaxRestarts restarts per AppScripts.Window; beyond that it
	// acts as ActionStop. The default for application checkers.
	ActionRestart = "restart"
	// ActionStop makes the node leave the farm and stay failed until an
	// operator starts it again (Monitor.Reset).
	ActionStop = "stop"
	// ActionWait makes the node leave the farm while the checker fails and
	// rejoin by itself when every checker passes, without running scripts:
	// for what a restart cannot fix (a link down, a lost address). The
	// default for interface and vip checkers (SafeKit's "wait").
	ActionWait = "wait"
	// ActionNone only records an event.
	ActionNone = "none"
)

// Defaults and limits.
const (
	// MinInterval is the shortest interval a checker runs at; shorter ones
	// are raised to it, so a typo cannot turn a script checker into a fork bomb.
	MinInterval = 100 * time.Millisecond
	// DefaultInterval is the interval when Spec.Interval is zero.
	DefaultInterval = time.Second
	// DefaultFall is how many failures in a row make a passing checker failing.
	DefaultFall = 3
	// DefaultRise is how many successes in a row make a failing checker passing.
	DefaultRise = 2
	// DefaultExpect is the HTTP status an http checker wants by default.
	DefaultExpect = 200
)

// Spec is one checker's settings, filled by the agent from a [[checker]]
// section of the config. Zero values take the defaults documented on each
// field; WithDefaults applies them and Validate checks the result.
type Spec struct {
	// Name identifies the checker in events and status; unique per node.
	// Default: the type.
	Name string
	// Type is one of the Type* constants.
	Type string
	// Target is what to probe; its meaning depends on Type.
	Target string
	// Interval is the time between two probes. Default DefaultInterval,
	// at least MinInterval.
	Interval time.Duration
	// Timeout bounds one probe. Default: Interval.
	Timeout time.Duration
	// Fall is how many failures in a row make the checker failing. Default DefaultFall.
	Fall int
	// Rise is how many successes in a row make the checker passing. Default DefaultRise.
	Rise int
	// Action is one of the Action* constants. Default ActionRestart, or
	// ActionWait for interface and vip checkers.
	Action string
	// Expect is the HTTP status an http checker wants. Default DefaultExpect.
	// Redirects are not followed, so a redirecting page needs Expect = 301 or 302.
	Expect int
	// Body, when set, must appear in the first MaxBody bytes of the
	// HTTP response body.
	Body string
	// Host overrides the HTTP Host header (and the TLS server name).
	Host string
	// SkipVerify skips TLS certificate verification for https targets.
	SkipVerify bool
	// VIP is the farm's virtual address, filled by the agent; a vip checker
	// with an empty Target checks it.
	VIP string
}

// WithDefaults returns s with zero fields set to their defaults and the
// interval raised to MinInterval.
func (s Spec) WithDefaults() Spec {
	if s.Name == "" {
		s.Name = s.Type
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Interval > 0 && s.Interval < MinInterval {
		s.Interval = MinInterval // negative ones are left for Validate to reject
	}
	if s.Timeout == 0 {
		s.Timeout = s.Interval
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Action == "" {
		s.Action = ActionRestart
		if s.Type == TypeInterface || s.Type == TypeVIP {
			s.Action = ActionWait
		}
	}
	if s.Type == TypeHTTP && s.Expect == 0 {
		s.Expect = DefaultExpect
	}
	if s.Type == TypeVIP && s.Target == "" {
		s.Target = s.VIP
	}
	return s
}

// Validate checks s (after WithDefaults) without looking at the host: the
// same Spec gets the same answer on any machine. Errors name the checker
// and the key to fix.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("checker %q: %s", s.Name, fmt.Sprintf(format, a...))
	}
	switch s.Action {
	case ActionRestart, ActionStop, ActionWait, ActionNone:
	default:
		return bad("action %q is not one of restart, stop, wait, none", s.Action)
	}
	if s.Interval < 0 || s.Timeout < 0 {
		return bad("interval and timeout must be positive durations such as \"1s\"")
	}
	if s.Fall < 0 || s.Rise < 0 {
		return bad("fall and rise must be positive counts")
	}
	if s.Type != TypeHTTP && (s.Expect != 0 || s.Body != "" || s.Host != "" || s.SkipVerify) {
		return bad("expect, body, host and skip_verify apply only to http checkers, not %q", s.Type)
	}
	if s.Target == "" {
		if s.Type == TypeVIP {
			return bad("target is empty and the farm has no VIP to check; set target to the address")
		}
		if s.Type != "" {
			return bad("target is empty; set what the %s checker probes", s.Type)
		}
	}
	switch s.Type {
	case TypeTCP:
		if _, port, err := net.SplitHostPort(s.Target); err != nil || port == "" {
			return bad("target %q is not host:port, e.g. \"127.0.0.1:80\"", s.Target)
		}
	case TypeHTTP:
		u, err := url.Parse(s.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("target %q is not an http:// or https:// URL", s.Target)
		}
		if s.Expect < 100 || s.Expect > 599 {
			return bad("expect %d is not an HTTP status (100-599)", s.Expect)
		}
	case TypeVIP:
		if _, err := netip.ParseAddr(s.Target); err != nil {
			return bad("target %q is not an IP address", s.Target)
		}
	case TypeProcess, TypeScript, TypeInterface:
	case "":
		return bad("type is empty; set one of tcp, http, process, script, interface, vip")
	default:
		return bad("type %q is not one of tcp, http, process, script, interface, vip", s.Type)
	}
	return nil
}

// validateAll checks every spec and that names are unique.
func validateAll(specs []Spec) error {
	seen := make(map[string]bool, len(specs))
	var errs []error
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("checker %q: name used twice; give each checker its own name", s.Name))
		}
		seen[s.Name] = true
	}
	return errors.Join(errs...)
}
