package vip

import (
	"fmt"
	"strings"
)

// Mode says how every node of the farm receives the frames sent to a VIP.
// The zero Mode is ModeVMAC, the default.
type Mode uint8

const (
	// ModeVMAC answers ARP/ND with a locally administered unicast virtual MAC
	// that never appears as a source on the wire, so switches never learn it
	// and flood every frame for it to every port. It works with any switch
	// and any client, at the cost of flooding the VLAN.
	ModeVMAC Mode = iota
	// ModeMulticast answers ARP/ND with a multicast MAC that every node
	// listens to (like Windows NLB multicast mode). Switches can confine it
	// with static entries; some routers refuse ARP replies carrying a
	// multicast MAC (RFC 1812), so it is the opt-in mode.
	ModeMulticast
	// ModeIGMP is Windows NLB's IGMP multicast mode, and the Windows
	// engine's multicast mode (filter/windivert): ARP/ND answer with the
	// MAC of an IP multicast group derived from the VIP (GroupMAC) and
	// every node joins that group on its LAN interface, so the NIC accepts
	// the frames and the node's IGMP/MLD reports tell snooping switches
	// where the members are. It is the mode a farm mixing Linux and
	// Windows nodes uses in place of ModeMulticast, whose 03:bf MAC a
	// Windows node cannot receive. Routers refuse multicast MACs in ARP
	// replies (RFC 1812) and need a static entry VIP -> GroupMAC.
	ModeIGMP
)

// maxMode is the last valid Mode.
const maxMode = ModeIGMP

// String returns the configuration spelling of m.
func (m Mode) String() string {
	switch m {
	case ModeVMAC:
		return "vmac"
	case ModeMulticast:
		return "multicast"
	case ModeIGMP:
		return "igmp"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads the configuration spelling of a mode ("vmac",
// "multicast" or "igmp", in any case, surrounding spaces ignored), so config files and
// flags share one vocabulary. It is the config's parser: its error names the
// accepted words and leaves naming the key to the caller.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "vmac":
		return ModeVMAC, nil
	case "multicast":
		return ModeMulticast, nil
	case "igmp":
		return ModeIGMP, nil
	}
	return 0, fmt.Errorf("%q is not vmac, multicast or igmp", s)
}

// MarshalText lets encoders (TOML, JSON) write a Mode by name.
func (m Mode) MarshalText() ([]byte, error) {
	if m > maxMode {
		return nil, fmt.Errorf("vip mode %d is not one of vmac, multicast, igmp", uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText lets decoders (TOML, JSON) read a Mode by name.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return fmt.Errorf("vip mode %w", err)
	}
	*m = v
	return nil
}
