package vip

import (
	"log/slog"
)

// Claim makes this node receive every frame sent to the farm's VIPs and
// answers ARP/ND for them with the virtual MAC, without ever letting a
// switch learn that MAC. Each node runs one Claim for all its VIPs; every
// node answers, which is harmless since all answers are identical.
type Claim struct {
	cfgs []Config
	log  *slog.Logger
}

// New prepares a Claim for cfgs (VIP number i gets holder device farmv<i>).
// It starts nothing: Run does the work and undoes it.
func New(cfgs []Config, log *slog.Logger) *Claim {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Claim{cfgs: append([]Config(nil), cfgs...), log: log}
}
