package lab

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// FDBEntry is one row of the switch's forwarding table (bridge fdb show).
type FDBEntry struct {
	// MAC is lower case, colon separated.
	MAC string
	// Port is the bridge port (p1.., pc) or the bridge itself.
	Port string
	// State is "permanent" for the ports' own addresses, "" for learned ones.
	State string
	// Flags are iproute2's flags ("self", "extern_learn", ...).
	Flags []string
	// Master is the bridge the entry belongs to; empty for a port's own
	// "self" entries (its multicast filter list), which are not learned.
	Master string
}

// Learned reports whether the bridge learned this address from traffic: the
// entry is in the bridge's table and not one of its ports' own addresses.
func (e FDBEntry) Learned() bool {
	return e.Master != "" && e.State != "permanent" && e.State != "static" && !slices.Contains(e.Flags, "self")
}

func (e FDBEntry) String() string {
	s := e.MAC + " dev " + e.Port
	if e.Master != "" {
		s += " master " + e.Master
	}
	if len(e.Flags) > 0 {
		s += " " + strings.Join(e.Flags, " ")
	}
	if e.State != "" {
		s += " " + e.State
	}
	return s
}

// FDB is the switch's forwarding table.
type FDB []FDBEntry

// Find returns the learned entries for mac (any case), so a test can assert
// the virtual MAC was never learned: len(fdb.Find(vmac)) == 0.
func (f FDB) Find(mac string) []FDBEntry {
	mac = strings.ToLower(mac)
	var out []FDBEntry
	for _, e := range f {
		if e.MAC == mac && e.Learned() {
			out = append(out, e)
		}
	}
	return out
}

func (f FDB) String() string {
	var b strings.Builder
	for _, e := range f {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// parseFDB reads `bridge -j fdb show` output.
func parseFDB(out []byte) (FDB, error) {
	var raw []struct {
		MAC    string   `json:"mac"`
		IfName string   `json:"ifname"`
		Flags  []string `json:"flags"`
		Master string   `json:"master"`
		State  string   `json:"state"`
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("parse bridge fdb json: %w", err)
	}
	f := make(FDB, 0, len(raw))
	for _, r := range raw {
		f = append(f, FDBEntry{MAC: strings.ToLower(r.MAC), Port: r.IfName, State: r.State, Flags: r.Flags, Master: r.Master})
	}
	return f, nil
}
