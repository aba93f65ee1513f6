package member

import (
	"time"

	"github.com/webfarm/farm/farm/view"
)

// A node restarted inside a partition must not serve alone: gossip starts
// with an empty member list, so a node that counted only what it sees would
// be a majority of one. Config.Remembered carries the farm the node last knew
// (the agent keeps it in state_dir): those members count towards the majority
// until gossip sees them, or until they have been down for settleTime while
// this node held quorum (dynamic quorum, as for any failed peer).

// present lists the names serf knows.
func present(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

// phantoms returns the remembered members serf does not list, as down nodes
// that own nothing (id 0) but count towards the majority unless excluded.
func (m *Membership) phantoms(seen map[string]bool, excluded map[string]bool) []view.Node {
	var out []view.Node
	for _, name := range m.cfg.Remembered {
		if name == m.cfg.Name || seen[name] {
			continue
		}
		out = append(out, view.Node{Name: name, State: view.StateDown, Excluded: excluded[name]})
	}
	return out
}

// settleRemembered applies settle's rule to remembered members serf does not
// list (they are down from this node's start): it updates next and reports
// whether it changed. Caller holds m.mu.
func (m *Membership) settleRemembered(seen map[string]bool, next map[string]bool, now time.Time) bool {
	changed := false
	for _, name := range m.cfg.Remembered {
		if name == m.cfg.Name || seen[name] {
			continue
		}
		since, ok := m.downSince[name]
		if !ok {
			m.downSince[name] = now
			continue
		}
		if !next[name] && m.view.Quorum && now.Sub(since) >= settleTime {
			next[name] = true
			changed = true
			m.log.Info("Remembered peer still absent: it no longer counts towards the majority.", "peer", name, "absent_for", now.Sub(since).Round(time.Second))
		}
	}
	return changed
}
