package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/filter/windivert"
)

// platformDeps fills the real OS parts left nil in d: on Windows the
// WinDivert engine, which also holds the VIP addresses while it runs (so a
// dead engine leaves no address to answer for) and counts its own flows.
func platformDeps(d *Deps, cfg *config.Config, spec rules.Spec, log *slog.Logger) error {
	if d.Engine == nil {
		if cfg.Filter.Engine != "windivert" {
			return fmt.Errorf("filter.engine: %q runs on Linux only; set engine = \"windivert\" on Windows", cfg.Filter.Engine)
		}
		eng := windivert.New(windivert.Spec{
			Self: spec.Self, VIPs: cfg.VIPs(), Rules: cfg.Rules(), StateDir: cfg.StateDir,
		}, log.With("component", "filter", "engine", "windivert"))
		d.Engine = eng
		if d.Flows == nil {
			d.Flows = eng.Flows
		}
	}
	if d.VIP == nil {
		d.VIP = engineHeldVIP{}
	}
	if d.Flows == nil {
		d.Flows = func(context.Context) (int, error) {
			return -1, fmt.Errorf("no flow count without the WinDivert engine")
		}
	}
	return nil
}

// engineHeldVIP is the VIP claim on Windows: the WinDivert engine adds the
// addresses itself, so there is nothing to claim or clean up here.
type engineHeldVIP struct{}

func (engineHeldVIP) Cleanup(context.Context) error { return nil }
func (engineHeldVIP) Run(ctx context.Context, ready func()) error {
	ready()
	<-ctx.Done()
	return nil
}
