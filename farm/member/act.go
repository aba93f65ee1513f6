package member

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"
)

// queryAct is the serf query that carries an operator's action to the node it
// names. Gossip is encrypted with the farm key, so only members can send it.
const queryAct = "farm-act"

// ErrUnknownNode is returned by Act for a node name serf does not know.
var ErrUnknownNode = errors.New("no such node in the farm")

// Act applies an operator action (stop, start, drain) to the named node:
// directly when it is this node, through a serf query otherwise.
func (m *Membership) Act(ctx context.Context, node, action string) error {
	if node == m.cfg.Name {
		return m.handleAction(action)
	}
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	if s == nil {
		return errors.New("gossip is not running yet")
	}
	var target *serf.Member
	for _, mem := range s.Members() {
		if mem.Name == node {
			target = &mem
			break
		}
	}
	if target == nil {
		return fmt.Errorf("%w: %q", ErrUnknownNode, node)
	}
	if target.Status != serf.StatusAlive {
		return fmt.Errorf("node %q is %s: it cannot be reached", node, target.Status)
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	resp, err := s.Query(queryAct, []byte(node+"\x00"+action), &serf.QueryParam{
		FilterNodes: []string{node}, RequestAck: false, Timeout: timeout,
	})
	if err != nil {
		return fmt.Errorf("send %s to %s: %w", action, node, err)
	}
	defer resp.Close()
	for {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return fmt.Errorf("node %q did not answer within %s", node, timeout)
			}
			if r.From != node {
				continue
			}
			if msg, found := strings.CutPrefix(string(r.Payload), "error: "); found {
				return fmt.Errorf("node %q: %s", node, msg)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *Membership) handleAction(action string) error {
	if m.cfg.OnAction == nil {
		return errors.New("this node takes no actions")
	}
	return m.cfg.OnAction(action)
}

// answerQuery runs an action another node sent us and answers with the result.
func (m *Membership) answerQuery(q *serf.Query) {
	if q.Name != queryAct {
		return
	}
	node, action, ok := strings.Cut(string(q.Payload), "\x00")
	resp := "ok"
	switch {
	case !ok || node != m.cfg.Name:
		resp = "error: query not for this node"
	default:
		if err := m.handleAction(action); err != nil {
			resp = "error: " + err.Error()
		}
	}
	if err := q.Respond([]byte(resp)); err != nil {
		m.log.Warn("Answering an action query failed.", "action", action, "err", err)
	}
}
