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
)

// String returns the configuration spelling of m.
func (m Mode) String() string {
	switch m {
	case ModeVMAC:
		return "vmac"
	case ModeMulticast:
		return "multicast"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads the configuration spelling of a mode ("vmac" or
// "multicast", in any case, surrounding spaces ignored), so config files and
// flags share one vocabulary. It is the config's parser: its error names the
// accepted words and leaves naming the key to the caller.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "vmac":
		return ModeVMAC, nil
	case "multicast":
		return ModeMulticast, nil
	}
	return 0, fmt.Errorf("%q is not vmac or multicast", s)
}

// MarshalText lets encoders (TOML, JSON) write a Mode by name.
func (m Mode) MarshalText() ([]byte, error) {
	if m > ModeMulticast {
		return nil, fmt.Errorf("vip mode %d is not one of vmac, multicast", uint8(m))
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
