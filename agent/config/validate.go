package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
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
// file reads), so `farm check` answers the same everywhere. It reports every
// problem at once, joined with errors.Join, each a *FieldError naming its key.
// Call it after defaults are filled (Parse does both).
func (c *Config) Validate() error {
	return errors.Join(c.problems()...)
}

type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) problems() []error {
	var p problems
	c.validateNode(&p)
	c.validateGossip(&p)
	c.validateVIPs(&p)
	c.validateRules(&p)
	c.validateFilter(&p)
	c.validateApp(&p)
	c.validateCheckers(&p)
	c.validateConsole(&p)
	validateAbsPath(&p, "state_dir", c.StateDir)
	return p
}

func (c *Config) validateNode(p *problems) {
	switch n := c.Node.Name; {
	case n == "":
		p.add("node.name", `required: a name unique in the farm, e.g. "web1"`)
	case !isHostname(n):
		p.add("node.name", "%q is not host-name-like (letters, digits, '-' and '.', at most 63 per label)", n)
	}
	if id := c.Node.ID; id < 1 || id > MaxNodeID {
		p.add("node.id", "%d is out of range 1..%d (a unique, stable number per node)", id, MaxNodeID)
	}
	if w := c.Node.Weight; w != nil && (*w < 0 || *w > MaxWeight) {
		p.add("node.weight", "%d is out of range 0..%d", *w, MaxWeight)
	}
	if d := c.Node.DrainTimeout.Duration; d < time.Second {
		p.add("node.drain_timeout", "%s is too short: at least 1s", d)
	}
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
	if g.Witness != "" {
		if _, err := netip.ParseAddr(g.Witness); err != nil {
			if _, err := netip.ParseAddrPort(g.Witness); err != nil {
				p.add("gossip.witness", "%q is not an IP address or ip:port", g.Witness)
			}
		}
	}
}

func (c *Config) validateVIPs(p *problems) {
	if len(c.VIP) == 0 {
		p.add("vip", "at least one [[vip]] is required: the address the farm serves")
	}
	seen := map[netip.Addr]int{}
	for i, v := range c.VIP {
		key := fmt.Sprintf("vip[%d]", i)
		if a, ok := checkVIPAddress(p, key+".address", v.Address); ok {
			if j, dup := seen[a]; dup {
				p.add(key+".address", "%q duplicates vip[%d]", v.Address, j)
			} else {
				seen[a] = i
			}
		}
		if strings.TrimSpace(v.Interface) == "" {
			p.add(key+".interface", "required: the interface facing the clients, e.g. \"eth0\"")
		}
		if v.Mode != "vmac" && v.Mode != "multicast" {
			p.add(key+".mode", "%q is not vmac or multicast", v.Mode)
		}
	}
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

func (c *Config) validateRules(p *problems) {
	if len(c.Rule) == 0 {
		p.add("rule", "at least one [[rule]] is required: which ports of the VIPs are balanced")
	}
	type owned struct {
		rule  int
		ports [2]uint16
	}
	byProto := map[string][]owned{}
	for i, r := range c.Rule {
		key := fmt.Sprintf("rule[%d]", i)
		protoOK := r.Proto == "tcp" || r.Proto == "udp"
		if !protoOK {
			p.add(key+".proto", "%q is not tcp or udp", r.Proto)
		}
		ports, err := ParsePorts(r.Ports)
		if err != nil {
			p.add(key+".ports", "%v", err)
		} else if protoOK {
		overlap:
			for _, pr := range ports {
				for _, o := range byProto[r.Proto] {
					if pr[0] <= o.ports[1] && o.ports[0] <= pr[1] {
						p.add(key+".ports", "%s/%s is already balanced by rule[%d] (%s)", formatRange(pr), r.Proto, o.rule, formatRange(o.ports))
						break overlap
					}
				}
			}
			for _, pr := range ports {
				byProto[r.Proto] = append(byProto[r.Proto], owned{i, pr})
			}
		}
		switch r.Affinity {
		case "ip", "ip-port", "network":
		default:
			p.add(key+".affinity", "%q is not ip, ip-port or network", r.Affinity)
		}
	}
}

func (c *Config) validateFilter(p *problems) {
	f := c.Filter
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
	if c.App.MaxRestarts < 1 || c.App.MaxRestarts > 1000 {
		p.add("app.max_restarts", "%d is out of range 1..1000", c.App.MaxRestarts)
	}
	if d := c.App.RestartWindow.Duration; d < time.Minute {
		p.add("app.restart_window", "%s is too short: at least 1m", d)
	}
}

var checkerTypes = map[string]bool{"tcp": true, "http": true, "process": true, "script": true, "interface": true, "vip": true}

func (c *Config) validateCheckers(p *problems) {
	names := map[string]int{}
	for i, k := range c.Checker {
		key := fmt.Sprintf("checker[%d]", i)
		if k.Name == "" {
			p.add(key+".name", "required: a name unique among the checkers")
		} else if j, dup := names[k.Name]; dup {
			p.add(key+".name", "%q duplicates checker[%d]", k.Name, j)
		} else {
			names[k.Name] = i
		}

		if !checkerTypes[k.Type] {
			p.add(key+".type", "%q is not tcp, http, process, script, interface or vip", k.Type)
		} else {
			c.validateTarget(p, key, k)
		}

		intervalOK := true
		if k.Interval.Duration < MinCheckInterval {
			intervalOK = false
			p.add(key+".interval", "%v is below the minimum %v (a faster checker could fork-bomb the host)", k.Interval.Duration, MinCheckInterval)
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
		switch k.Action {
		case "restart":
			if c.App.Start == "" || c.App.Stop == "" {
				p.add(key+".action", `restart needs app.start and app.stop: set them, or use action = "stop" or "none"`)
			}
		case "stop", "wait", "none":
		default:
			p.add(key+".action", "%q is not restart, stop, wait or none", k.Action)
		}

		switch {
		case !checkerTypes[k.Type]:
			// Already reported; which fields apply is unknown.
		case k.Type == "http":
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
	}
}

func (c *Config) validateTarget(p *problems, key string, k Checker) {
	key += ".target"
	t := k.Target
	if k.Type == "vip" {
		if t == "" {
			return // all VIPs
		}
		want, err := netip.ParseAddr(t)
		if err == nil {
			for _, v := range c.VIP {
				if a, err := netip.ParseAddr(v.Address); err == nil && a == want {
					return
				}
			}
		}
		p.add(key, "%q is not one of the vip addresses (leave it empty to watch them all)", t)
		return
	}
	if strings.TrimSpace(t) == "" {
		p.add(key, "required for type %s", k.Type)
		return
	}
	switch k.Type {
	case "tcp":
		if err := checkHostPort(t); err != nil {
			p.add(key, "%q: %v", t, err)
		}
	case "http":
		u, err := url.Parse(t)
		switch {
		case err != nil:
			p.add(key, "%q is not a URL: %v", t, err)
		case u.Scheme != "http" && u.Scheme != "https":
			p.add(key, "%q must be an http:// or https:// URL", t)
		case u.Host == "" || u.Hostname() == "":
			p.add(key, "%q has no host", t)
		case u.Port() != "":
			if _, err := parsePort(u.Port()); err != nil {
				p.add(key, "%q: %v", t, err)
			}
		}
	}
}

func (c *Config) validateConsole(p *problems) {
	l := c.Console.Listen
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		p.add("console.listen", "%q is not host:port, e.g. %q", l, DefaultConsoleListen)
		return
	}
	if _, err := parsePort(port); err != nil {
		p.add("console.listen", "%q: %v", l, err)
		return
	}
	if host != "" && !isHostname(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			p.add("console.listen", "%q: %q is not an IP address or host name", l, host)
			return
		}
	}
	if !isLoopback(host) && c.Console.PasswordFile == "" {
		p.add("console.password_file", "required when console.listen (%s) is not a loopback address: anyone who reaches it could stop the farm", l)
	}
}

// isLoopback reports whether host names only this machine, without DNS.
func isLoopback(host string) bool {
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
	_, err = parsePort(port)
	return err
}
