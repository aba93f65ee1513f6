package windivert

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// DefaultVIPAdapter is the network adapter that holds the VIP addresses
// while the engine runs: a Microsoft KM-TEST Loopback Adapter renamed to
// this (scripts/iis/network.ps1 configures it). The VIP is not put on the
// LAN adapter, or Windows would answer ARP and neighbour solicitations for
// it with that adapter's own MAC and pull every client to one node.
const DefaultVIPAdapter = "farm-vip"

// DefaultPriority is the WinDivert priority of the engine's handle. A
// restarted engine that cannot adopt its predecessor's handle opens the
// other of DefaultPriority and DefaultPriority+1, so the two never share a
// level (WinDivert leaves the order of equal priorities undefined).
const DefaultPriority int16 = 1000

// DefaultMaxFlows is the flow table's default capacity: 262144 flows of
// this node take 16 MiB, allocated once at New.
const DefaultMaxFlows = 1 << 18

// Timeouts are how long a flow may stay silent before the flow table
// forgets it, by what the engine last saw of it. A forgotten flow's next
// packet is not a flow-opening one, so it is dropped: the established
// timeout must exceed the longest idle time of a live connection (Windows'
// TCP keep-alive default is 2 hours).
type Timeouts struct {
	// SYN: a TCP SYN was accepted and nothing else came yet (half-open:
	// short, so a SYN flood cannot fill the table for long).
	SYN time.Duration
	// Established: a TCP flow past its handshake.
	Established time.Duration
	// Closing: a TCP flow after a FIN or RST from the client; every packet
	// still passes and restarts this timer, so a spoofed RST costs the
	// flow nothing while it keeps talking.
	Closing time.Duration
	// UDPNew: a UDP flow with one datagram so far; UDP: with more.
	UDPNew, UDP time.Duration
}

// DefaultTimeouts mirror the Linux conntrack defaults where they apply,
// with an established timeout above Windows' 2-hour TCP keep-alive.
var DefaultTimeouts = Timeouts{
	SYN:         30 * time.Second,
	Established: 2*time.Hour + 10*time.Minute,
	Closing:     30 * time.Second,
	UDPNew:      30 * time.Second,
	UDP:         120 * time.Second,
}

// withDefaults fills unset timeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&t.SYN, d.SYN)
	pick(&t.Established, d.Established)
	pick(&t.Closing, d.Closing)
	pick(&t.UDPNew, d.UDPNew)
	pick(&t.UDP, d.UDP)
	return t
}

// Spec is everything the engine depends on. The zero values of the
// optional fields select the defaults above.
type Spec struct {
	// Self is this node's id (1..250).
	Self uint8
	// VIPs are the farm's virtual addresses. Interface is the LAN adapter
	// (its Windows alias, "Ethernet") on which the VIP's frames arrive: the
	// firewall guard covers it, and in ModeMulticast (or ModeIGMP, the same
	// on Windows) the engine joins the
	// VIP's IGMP/MLD group there.
	VIPs []vip.Config
	// Rules are the balanced protocols and ports, as on Linux.
	Rules []filter.Rule
	// StateDir holds the crash guard's record (GuardFile), so a restarted
	// engine finds and adopts the handle its predecessor left. Required.
	StateDir string
	// VIPAdapter is the adapter alias the VIP addresses are added to while
	// the engine runs; "" means DefaultVIPAdapter.
	VIPAdapter string
	// FirewallGuard adds a persistent Windows Firewall rule blocking the
	// balanced ports of the VIPs on the LAN adapters, and reinjects the
	// packets the engine accepts as arriving on VIPAdapter, which the rule
	// does not cover. It protects a node whose agent and crash guard are
	// both gone. Off by default: it depends on how Windows treats packets
	// injected on another adapter, which has not been tried on a real host
	// (see README.md).
	FirewallGuard bool
	// Priority is the WinDivert handle priority; 0 means DefaultPriority.
	Priority int16
	// MaxFlows bounds the flow table; 0 means DefaultMaxFlows.
	MaxFlows int
	// Timeouts of the flow table; zero fields take DefaultTimeouts.
	Timeouts Timeouts
}

// maxAdapterName bounds adapter aliases (Windows allows 256 characters in
// an alias; the interface alias field of the IP Helper API holds 257).
const maxAdapterName = 256

// Validate checks the spec before anything is touched, so a bad config
// fails with a message rather than a half-installed engine.
func (s Spec) Validate() error {
	var errs []error
	if s.Self == 0 || s.Self > table.MaxID {
		errs = append(errs, fmt.Errorf("node id %d: must be 1..%d", s.Self, table.MaxID))
	}
	if len(s.VIPs) == 0 {
		errs = append(errs, errors.New("no VIP: give at least one [[vip]] address"))
	}
	for _, v := range s.VIPs {
		a := v.Addr
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Zone() != "" || a.Is4In6() {
			errs = append(errs, fmt.Errorf("vip %s: not a usable unicast address", a))
		}
		if err := checkAdapterName(v.Interface); err != nil {
			errs = append(errs, fmt.Errorf("vip %s: interface: %w", a, err))
		}
		// On Windows, multicast is NLB's IGMP multicast: the same frames as
		// Linux's igmp mode, so both names are accepted and a mixed farm
		// can say igmp on every node.
		if v.Mode != vip.ModeVMAC && v.Mode != vip.ModeMulticast && v.Mode != vip.ModeIGMP {
			errs = append(errs, fmt.Errorf("vip %s: mode %d is not one of vmac, multicast, igmp", a, uint8(v.Mode)))
		}
	}
	if len(s.Rules) == 0 {
		errs = append(errs, errors.New("no rule: give at least one [[rule]] (proto, ports)"))
	}
	for i, r := range s.Rules {
		if r.Proto != filter.ProtoTCP && r.Proto != filter.ProtoUDP {
			errs = append(errs, fmt.Errorf("rule %d: proto %d: must be tcp (6) or udp (17)", i+1, r.Proto))
		}
		if r.Ports.Empty() {
			errs = append(errs, fmt.Errorf("rule %d: no ports", i+1))
		}
	}
	if len(errs) == 0 { // the filter of valid VIPs and rules may still be too long
		if _, err := Filter(s); err != nil {
			errs = append(errs, err)
		}
	}
	if s.StateDir == "" {
		errs = append(errs, errors.New("state_dir is empty: the crash guard keeps its record there"))
	}
	if s.VIPAdapter != "" {
		if err := checkAdapterName(s.VIPAdapter); err != nil {
			errs = append(errs, fmt.Errorf("vip adapter: %w", err))
		}
	}
	if s.Priority < PriorityLowest || s.Priority >= PriorityHighest {
		errs = append(errs, fmt.Errorf("priority %d: must be %d..%d (the engine also uses one above it)", s.Priority, PriorityLowest, PriorityHighest-1))
	}
	if s.MaxFlows < 0 || s.MaxFlows > MaxFlowsLimit {
		errs = append(errs, fmt.Errorf("max flows %d: must be 0 (default) up to %d", s.MaxFlows, MaxFlowsLimit))
	}
	return errors.Join(errs...)
}

// checkAdapterName accepts what a Windows adapter alias may be and what the
// engine can pass to netsh and PowerShell without quoting trouble.
func checkAdapterName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("adapter name is empty (Get-NetAdapter lists them)")
	case len(name) > maxAdapterName:
		return fmt.Errorf("adapter name %q is longer than %d bytes", name, maxAdapterName)
	case strings.ContainsAny(name, "\"'`$\r\n\x00"):
		return fmt.Errorf("adapter name %q contains a quote, $ or a control character (rename the adapter)", name)
	}
	return nil
}

// vipAdapter returns the adapter holding the VIP addresses.
func (s Spec) vipAdapter() string {
	if s.VIPAdapter == "" {
		return DefaultVIPAdapter
	}
	return s.VIPAdapter
}

// priority returns the base handle priority.
func (s Spec) priority() int16 {
	if s.Priority == 0 {
		return DefaultPriority
	}
	return s.Priority
}

// maxFlows returns the flow table's capacity.
func (s Spec) maxFlows() int {
	if s.MaxFlows == 0 {
		return DefaultMaxFlows
	}
	return s.MaxFlows
}
