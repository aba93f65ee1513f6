package agent

import (
	"fmt"
	"reflect"

	"github.com/webfarm/farm/agent/config"
)

// Reload applies a new config read on SIGHUP. Only the weight changes at run
// time (a planned change that moves no established flow); anything else is
// reported as needing a restart, so an operator is never left guessing
// which edit took effect.
func (a *Agent) Reload(next *config.Config) error {
	cur := a.cfg
	if next.Node.Name != cur.Node.Name || next.Node.ID != cur.Node.ID {
		return fmt.Errorf("node.name and node.id cannot change on reload (restart the agent)")
	}
	w := next.Weight()
	before, _, err := a.local.update(func(s *localState) { s.Weight = w })
	if err != nil {
		return err
	}
	if before.Weight != w {
		a.log.Info("Weight changed.", "from", before.Weight, "to", w)
	}
	// a.cfg stays the config the agent started with (read without a lock
	// by every component); only the weight lives on, in the local state.
	for _, d := range restartOnly(cur, next) {
		a.log.Warn("Config change needs an agent restart to take effect.", "section", d)
	}
	return nil
}

// restartOnly lists the sections that differ but are only read at start.
func restartOnly(a, b *config.Config) []string {
	var out []string
	an, bn := a.Node, b.Node
	an.Weight, bn.Weight = nil, nil
	for _, d := range []struct {
		name string
		x, y any
	}{
		{"node", an, bn}, {"gossip", a.Gossip, b.Gossip}, {"vip", a.VIP, b.VIP}, {"rule", a.Rule, b.Rule},
		{"filter", a.Filter, b.Filter}, {"app", a.App, b.App}, {"checker", a.Checker, b.Checker},
		{"console", a.Console, b.Console}, {"state_dir", a.StateDir, b.StateDir},
	} {
		if !reflect.DeepEqual(d.x, d.y) {
			out = append(out, d.name)
		}
	}
	return out
}
