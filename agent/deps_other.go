//go:build !windows

package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/flows"
	"github.com/webfarm/farm/filter/kernel"
	"github.com/webfarm/farm/filter/nfqueue"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/filter/vip"
)

// platformDeps fills the real OS parts left nil in d: on Linux the
// configured engine ("kernel": nftables sets decide new flows in the
// kernel; "nfqueue": in this process), the VIP claim (macvlan, ARP/ND) and
// conntrack flow counting.
func platformDeps(d *Deps, cfg *config.Config, spec rules.Spec, log *slog.Logger) error {
	if d.Engine == nil {
		elog := log.With("component", "filter", "engine", cfg.Filter.Engine)
		switch cfg.Filter.Engine {
		case "kernel":
			d.Engine = kernel.New(spec, elog)
		case "nfqueue":
			d.Engine = nfqueue.New(spec, elog)
		default:
			return fmt.Errorf("filter.engine: %q runs on Windows only; use kernel or nfqueue here", cfg.Filter.Engine)
		}
	}
	if d.VIP == nil {
		vlog := log.With("component", "vip")
		d.VIP = vipClaim{claim: vip.New(cfg.VIPs(), vlog), log: vlog}
	}
	if d.Flows == nil {
		self, addrs := spec.Self, spec.VIPs
		d.Flows = func(ctx context.Context) (int, error) {
			return flows.Count(ctx, filter.Mark(self), 0xffffffff, addrs)
		}
	}
	return nil
}
