package vip

import (
	"log/slog"
	"sync/atomic"
)

// Claim makes this node receive every frame sent to the farm's VIPs and
// answers ARP/ND for them with the virtual MAC, without ever letting a
// switch learn that MAC. Each node runs one Claim for all its VIPs; every
// node answers, which is harmless since all answers are identical.
type Claim struct {
	cfgs []Config
	log  *slog.Logger
	// parked: when Run ends, keep the VIPs (see Park).
	parked atomic.Bool
}

// Park makes Run, when its context ends, keep the VIPs' holder devices,
// addresses and frame rules instead of undoing them (the ARP/ND
// responders and group memberships end with the process), so the node
// goes on receiving its established flows, as after a crash. The next
// Run removes them first (Cleanup), and so does `farm cleanup`.
func (c *Claim) Park() { c.parked.Store(true) }

// New prepares a Claim for cfgs (VIP number i gets holder device farmv<i>).
// It starts nothing: Run does the work and undoes it.
func New(cfgs []Config, log *slog.Logger) *Claim {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Claim{cfgs: append([]Config(nil), cfgs...), log: log}
}
