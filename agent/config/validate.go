package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// FieldError is one problem with one key. Key is spelled as in the file, with
// array indices (vip[1].address), so the message points at what to fix.
type FieldError struct {
	Key string
	Msg string
}

// Error returns "key: message".
func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Validate checks the config without looking at the host (no look-ups, no
// file reads), so `farm check` answers the same everywhere; CheckHost checks
// it against this host. It reports every problem at once, joined with
// errors.Join, each a *FieldError naming its key. Call it after defaults are
// filled (Parse and SetDefaults do both). It also derives the typed values
// again (VIPs, Rules, CheckerSpecs, Weight), so they follow changes made to
// the fields since; they are empty while there is a problem.
func (c *Config) Validate() error {
	return errors.Join(c.finish()...)
}

type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// finish is the one pass over the file model: it checks every key and, in
// the same step, parses each value into the type its component takes, with
// that component's own parser (vip.ParseMode, filter.ParsePorts, ...). The
// typed values are kept only when there is no problem.
func (c *Config) finish() []error {
	var p problems
	var t typed
	t.weight = c.validateNode(&p)
	c.validateGossip(&p)
	t.vips = c.validateVIPs(&p)
	t.rules = c.validateRules(&p)
	c.validateFilter(&p)
	c.validateApp(&p)
	t.specs = c.validateCheckers(&p, t.vips)
	c.validateConsole(&p)
	c.validateLog(&p)
	validateAbsPath(&p, "state_dir", c.StateDir)
	if len(p) > 0 {
		t = typed{}
	}
	c.typed = t
	return p
}

// validateNode returns the node's weight, default applied.
func (c *Config) validateNode(p *problems) uint32 {
	switch n := c.Node.Name; {
	case n == "":
		p.add("node.name", `required: a name unique in the farm, e.g. "web1"`)
	case !isHostname(n):
		p.add("node.name", "%q is not host-name-like (letters, digits, '-' and '.', at most 63 per label)", n)
	}
	if id := c.Node.ID; id < 1 || id > table.MaxID {
		p.add("node.id", "%d is out of range 1..%d (a unique, stable number per node)", id, table.MaxID)
	}
	weight := uint32(DefaultWeight)
	if w := c.Node.Weight; w != nil {
		if *w < 0 || *w > MaxWeight {
			p.add("node.weight", "%d is out of range 0..%d", *w, MaxWeight)
		} else {
			weight = uint32(*w)
		}
	}
	if d := c.Node.DrainTimeout.Duration; d < time.Second {
		p.add("node.drain_timeout", "%s is too short: at least 1s", d)
	}
	return weight
}

func (c *Config) validateGossip(p *problems) {
	g := c.Gossip
	if g.Bind == "" {
		p.add("gossip.bind", `required: the ip:port serf listens on, e.g. "10.0.0.11:7946"`)
	} else if err := checkIPPort(g.Bind); err != nil {
		p.add("gossip.bind", "%q: %v", g.Bind, err)
	}
	if g.Advertise != "" {
		if err := checkIPPort(g.Advertise); err != nil {
			p.add("gossip.advertise", "%q: %v", g.Advertise, err)
		} else if ap := netip.MustParseAddrPort(g.Advertise); ap.Addr().IsUnspecified() {
			p.add("gossip.advertise", "%q: peers cannot reach an unspecified address; give this node's own IP", g.Advertise)
		}
	}
	for i, j := range g.Join {
		if err := checkHostPort(j); err != nil {
			p.add(fmt.Sprintf("gossip.join[%d]", i), "%q: %v", j, err)
		}
	}
	if g.KeyFile == "" {
		p.add("gossip.key_file", "required: a farm without a key is open to anyone (farm keygen makes one)")
	}
	positive(p, "gossip.retry_interval", g.RetryInterval)
	pi := positive(p, "gossip.probe_interval", g.ProbeInterval)
	pt := positive(p, "gossip.probe_timeout", g.ProbeTimeout)
	if pi && pt && g.ProbeTimeout.Duration >= g.ProbeInterval.Duration {
		p.add("gossip.probe_timeout", "%v must be shorter than gossip.probe_interval (%v)", g.ProbeTimeout.Duration, g.ProbeInterval.Duration)
	}
	if g.SuspicionMult < 1 {
		p.add("gossip.suspicion_mult", "%d: must be >= 1", g.SuspicionMult)
	}
	if d := c.Filter.ResetWindow.Duration; d < 0 || d > time.Hour {
		p.add("filter.reset_window", "%s is out of range 0..1h", d)
	}
	if d := g.HandoffDelay.Duration; d < 0 || d > time.Minute {
		p.add("gossip.handoff_delay", "%s is out of range 0..1m", d)
	}
	if d := g.SwitchLead.Duration; d < 0 || d > plan.MaxSwitchAhead {
		p.add("gossip.switch_lead", "%s is out of range 0..%s", d, plan.MaxSwitchAhead)
	}
	if d := g.SwitchMargin.Duration; d < 0 || d > time.Second {
		p.add("gossip.switch_margin", "%s is out of range 0..1s", d)
	}
	if g.Witness != "" {
		if _, err := netip.ParseAddr(g.Witness); err != nil {
			if _, err := netip.ParseAddrPort(g.Witness); err != nil {
				p.add("gossip.witness", "%q is not an IP address or ip:port", g.Witness)
			}
		}
	}
}

func (c *Config) validateVIPs(p *problems) []vip.Config {
	if len(c.VIP) == 0 {
		p.add("vip", "at least one [[vip]] is required: the address the farm serves")
	}
	seen := map[netip.Addr]int{}
	out := make([]vip.Config, 0, len(c.VIP))
	for i, v := range c.VIP {
		key := fmt.Sprintf("vip[%d]", i)
		a, ok := checkVIPAddress(p, key+".address", v.Address)
		if ok {
			if j, dup := seen[a]; dup {
				p.add(key+".address", "%q duplicates vip[%d]", v.Address, j)
			} else {
				seen[a] = i
			}
		}
		if strings.TrimSpace(v.Interface) == "" {
			p.add(key+".interface", "required: the interface facing the clients, e.g. \"eth0\"")
		}
		mode, err := vip.ParseMode(v.Mode)
		if err != nil {
			p.add(key+".mode", "%v", err)
		}
		out = append(out, vip.Config{Addr: a, Interface: v.Interface, Mode: mode})
	}
	return out
}

func checkVIPAddress(p *problems, key, s string) (netip.Addr, bool) {
	if s == "" {
		p.add(key, `required: an IPv4 or IPv6 address, e.g. "10.0.0.100"`)
		return netip.Addr{}, false
	}
	if pfx, err := netip.ParsePrefix(s); err == nil {
		p.add(key, "%q: write the address without a prefix length (%s)", s, pfx.Addr())
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		p.add(key, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	switch {
	case a.Zone() != "":
		p.add(key, "%q: remove the zone; the interface is vip.interface", s)
	case a.Is4In6():
		p.add(key, "%q: write the IPv4 address as such (%s)", s, a.Unmap())
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast():
		p.add(key, "%q cannot be a VIP: use a unicast address the clients can route to", s)
	default:
		return a, true
	}
	return netip.Addr{}, false
}

func (c *Config) validateRules(p *problems) []filter.Rule {
	if len(c.Rule) == 0 {
		p.add("rule", "at least one [[rule]] is required: which ports of the VIPs are balanced")
	}
	type owned struct {
		rule   int
		ranges []filter.PortRange
	}
	byProto := map[uint8][]owned{}
	out := make([]filter.Rule, 0, len(c.Rule))
	for i, r := range c.Rule {
		key := fmt.Sprintf("rule[%d]", i)
		proto, protoErr := filter.ParseProto(r.Proto)
		if protoErr != nil {
			p.add(key+".proto", "%v", protoErr)
		}
		ports, err := filter.ParsePorts(r.Ports)
		if err != nil {
			p.add(key+".ports", "%v", err)
		} else if protoErr == nil {
			mine := ports.Ranges()
		overlap:
			for _, pr := range mine {
				for _, o := range byProto[proto] {
					for _, or := range o.ranges {
						if pr.Lo <= or.Hi && or.Lo <= pr.Hi {
							p.add(key+".ports", "%s/%s is already balanced by rule[%d] (%s)", pr, r.Proto, o.rule, or)
							break overlap
						}
					}
				}
			}
			byProto[proto] = append(byProto[proto], owned{i, mine})
		}
		affinity, err := filter.ParseAffinity(r.Affinity)
		if err != nil {
			p.add(key+".affinity", "%v", err)
		}
		out = append(out, filter.Rule{Proto: proto, Ports: ports, Affinity: affinity})
	}
	return out
}

func (c *Config) validateFilter(p *problems) {
	f := c.Filter
	switch f.Engine {
	case "kernel", "nfqueue", "windivert":
	default:
		p.add("filter.engine", "%q is not kernel, nfqueue (Linux) or windivert (Windows)", f.Engine)
	}
	qsOK := f.Queues >= 1 && f.Queues <= MaxQueues
	if !qsOK {
		p.add("filter.queues", "%d is out of range 1..%d", f.Queues, MaxQueues)
	}
	maxQ := 65535
	if qsOK {
		maxQ = 65536 - f.Queues // the last queue, Queue+Queues-1, must exist
	}
	if f.Queue < 0 || f.Queue > maxQ {
		p.add("filter.queue", "%d is out of range 0..%d (queues %d..%d must all be <= 65535)", f.Queue, maxQ, f.Queue, f.Queue+max(f.Queues, 1)-1)
	}
}

func (c *Config) validateApp(p *problems) {
	positive(p, "app.timeout", c.App.Timeout)
	if c.App.MaxRestarts < 1 || c.App.MaxRestarts > 1000 { // beyond, the limit no longer stops a loop
		p.add("app.max_restarts", "%d is out of range 1..1000", c.App.MaxRestarts)
	}
	if d := c.App.RestartWindow.Duration; d < time.Minute {
		p.add("app.restart_window", "%s is too short: at least 1m", d)
	}
}

// checkerTypes and checkerActions are the words a [[checker]] accepts, in
// the order messages list them.
var (
	checkerTypes   = []string{checkers.TypeTCP, checkers.TypeHTTP, checkers.TypeProcess, checkers.TypeScript, checkers.TypeInterface, checkers.TypeVIP}
	checkerActions = []string{checkers.ActionRestart, checkers.ActionStop, checkers.ActionWait, checkers.ActionNone}
)

// validateCheckers returns one complete Spec per [[checker]]; vips are the
// typed [[vip]] sections (a vip checker without a target watches the first).
func (c *Config) validateCheckers(p *problems, vips []vip.Config) []checkers.Spec {
	firstVIP := ""
	if len(vips) > 0 && vips[0].Addr.IsValid() {
		firstVIP = vips[0].Addr.String()
	}
	names := map[string]int{}
	out := make([]checkers.Spec, 0, len(c.Checker))
	for i, k := range c.Checker {
		key := fmt.Sprintf("checker[%d]", i)
		if k.Name == "" {
			p.add(key+".name", "required: a name unique among the checkers")
		} else if j, dup := names[k.Name]; dup {
			p.add(key+".name", "%q duplicates checker[%d]", k.Name, j)
		} else {
			names[k.Name] = i
		}

		typeOK := slices.Contains(checkerTypes, k.Type)
		target := k.Target
		if !typeOK {
			p.add(key+".type", "%q is not %s", k.Type, oneOf(checkerTypes))
		} else {
			target = validateTarget(p, key, k, vips, firstVIP)
		}

		intervalOK := true
		if k.Interval.Duration < checkers.MinInterval {
			intervalOK = false
			p.add(key+".interval", "%v is below the minimum %v (a faster checker could fork-bomb the host)", k.Interval.Duration, checkers.MinInterval)
		}
		// A timeout derived from a bad interval is not reported twice.
		if intervalOK && positive(p, key+".timeout", k.Timeout) && k.Timeout.Duration >= k.Interval.Duration {
			p.add(key+".timeout", "%v must be shorter than interval (%v)", k.Timeout.Duration, k.Interval.Duration)
		}
		if k.Fall < 1 {
			p.add(key+".fall", "must be >= 1")
		}
		if k.Rise < 1 {
			p.add(key+".rise", "must be >= 1")
		}
		switch {
		case !slices.Contains(checkerActions, k.Action):
			p.add(key+".action", "%q is not %s", k.Action, oneOf(checkerActions))
		case k.Action == checkers.ActionRestart && (c.App.Start == "" || c.App.Stop == ""):
			p.add(key+".action", `restart needs app.start and app.stop: set them, or use action = "wait", "stop" or "none"`)
		}

		switch {
		case !typeOK:
			// Already reported; which fields apply is unknown.
		case k.Type == checkers.TypeHTTP:
			if k.Expect < 100 || k.Expect > 599 {
				p.add(key+".expect", "%d is not an HTTP status (100..599)", k.Expect)
			}
		default:
			for _, f := range []struct {
				name string
				set  bool
			}{{"expect", k.Expect != 0}, {"body", k.Body != ""}, {"host", k.Host != ""}, {"skip_verify", k.SkipVerify}} {
				if f.set {
					p.add(key+"."+f.name, "applies only to type http, not %q", k.Type)
				}
			}
		}
		out = append(out, checkers.Spec{
			Name: k.Name, Type: k.Type, Target: target,
			Interval: k.Interval.Duration, Timeout: k.Timeout.Duration, Fall: k.Fall, Rise: k.Rise, Action: k.Action,
			Expect: k.Expect, Body: k.Body, Host: k.Host, SkipVerify: k.SkipVerify,
			VIP: firstVIP,
		})
	}
	return out
}

// validateTarget checks a checker's target and returns it as the probe
// takes it: a vip checker's address in canonical form, the first VIP when
// the target is empty.
func validateTarget(p *problems, key string, k Checker, vips []vip.Config, firstVIP string) string {
	key += ".target"
	t := k.Target
	if k.Type == checkers.TypeVIP {
		if t == "" {
			return firstVIP
		}
		if want, err := netip.ParseAddr(t); err == nil {
			for _, v := range vips {
				if v.Addr == want {
					return want.String()
				}
			}
		}
		p.add(key, "%q is not one of the vip addresses (leave it empty to watch the first one)", t)
		return t
	}
	if strings.TrimSpace(t) == "" {
		p.add(key, "required for type %s", k.Type)
		return t
	}
	switch k.Type {
	case checkers.TypeTCP:
		if err := checkHostPort(t); err != nil {
			p.add(key, "%q: %v", t, err)
		}
	case checkers.TypeHTTP:
		u, err := url.Parse(t)
		switch {
		case err != nil:
			p.add(key, "%q is not a URL: %v", t, err)
		case u.Scheme != "http" && u.Scheme != "https":
			p.add(key, "%q must be an http:// or https:// URL", t)
		case u.Host == "" || u.Hostname() == "":
			p.add(key, "%q has no host", t)
		case u.Port() != "":
			if _, err := filter.ParsePort(u.Port()); err != nil {
				p.add(key, "%q: %v", t, err)
			}
		}
	}
	return t
}

// oneOf spells a list of words as "a, b or c".
func oneOf(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func (c *Config) validateConsole(p *problems) {
	l := c.Console.Listen
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		p.add("console.listen", "%q is not host:port, e.g. %q", l, DefaultConsoleListen)
		return
	}
	if _, err := filter.ParsePort(port); err != nil {
		p.add("console.listen", "%q: %v", l, err)
		return
	}
	if host != "" && !isHostname(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			p.add("console.listen", "%q: %q is not an IP address or host name", l, host)
			return
		}
	}
	if !IsLoopbackHost(host) && c.Console.PasswordFile == "" {
		p.add("console.password_file", "required when console.listen (%s) is not a loopback address: anyone who reaches it could stop the farm", l)
	}
	cert, key := c.Console.TLSCert, c.Console.TLSKey
	switch {
	case cert != "" && key == "":
		p.add("console.tls_key", "required with console.tls_cert (farm cert makes a pair)")
	case key != "" && cert == "":
		p.add("console.tls_cert", "required with console.tls_key (farm cert makes a pair)")
	}
}

func (c *Config) validateLog(p *problems) {
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
}

// IsLoopbackHost reports whether host (an IP address or a name, without a
// port) names only this machine, deciding without DNS: "localhost" and
// loopback addresses (127/8, ::1, IPv4-mapped forms) do. An empty host, as
// in ":9010", means every address and is not loopback.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// positive reports whether d > 0, adding a problem when not.
func positive(p *problems, key string, d Duration) bool {
	if d.Duration <= 0 {
		p.add(key, "%v: must be > 0", d.Duration)
		return false
	}
	return true
}

func validateAbsPath(p *problems, key, s string) {
	if s == "" {
		p.add(key, "required")
		return
	}
	if !isAbs(s) {
		p.add(key, "%q must be an absolute path", s)
	}
}

// isAbs accepts Unix and Windows absolute paths whatever the OS running
// `farm check`, so the answer does not depend on it.
func isAbs(s string) bool {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\\`) {
		return true
	}
	return len(s) >= 3 && (s[0]|0x20) >= 'a' && (s[0]|0x20) <= 'z' && s[1] == ':' && (s[2] == '\\' || s[2] == '/')
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func isHostname(s string) bool { return len(s) <= 253 && hostnameRE.MatchString(s) }

// checkIPPort accepts ip:port with a literal IP and a port 1..65535.
func checkIPPort(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("not ip:port (IPv6 as [addr]:port)")
	}
	if ap.Port() == 0 {
		return fmt.Errorf("port 0 is out of range 1..65535")
	}
	return nil
}

// checkHostPort accepts host:port where host is an IP or a host name.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("not host:port (IPv6 as [addr]:port)")
	}
	if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	_, err = filter.ParsePort(port)
	return err
}
