package member

import "errors"

// Kill stops this node's gossip abruptly, without leaving the farm: the
// others notice only through their failure detector, as when the host of a
// real agent crashes. It exists for simulations and tests that run many
// memberships in one process (tests/cmd/farmsim), where a node cannot be
// killed with a signal; an agent never calls it. Run then returns an error
// ("gossip shut down unexpectedly").
func (m *Membership) Kill() error {
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	if s == nil {
		return errors.New("kill: gossip is not running")
	}
	return s.Shutdown()
}
