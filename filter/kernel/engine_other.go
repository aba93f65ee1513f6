//go:build !linux

package kernel

import (
	"context"
	"errors"

	"github.com/webfarm/farm/farm/plan"
)

// errNotLinux is what Run returns off Linux: the engine is nftables.
var errNotLinux = errors.New(`kernel filter engine: needs Linux nftables (use [filter] engine = "nfqueue" on Linux; other systems have their own engine)`)

// netlinkState is empty off Linux: Run never installs anything.
type netlinkState struct{}

func (*netlinkState) apply(owned, reset, mine []uint16, self uint8, sw *plan.Switch) error {
	return errNotLinux
}

// Run fails at once off Linux.
func (e *Engine) Run(ctx context.Context) error { return errNotLinux }

// Seen is empty off Linux.
func (e *Engine) Seen() []uint64 { return make([]uint64, len(e.spec.VIPs)) }
