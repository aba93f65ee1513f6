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

// queryInfo asks every node for what it tells about itself (Config.OnInfo).
const queryInfo = "farm-info"

// InfoLimit bounds an info answer: serf's default query response limit,
// which keeps an answer in one UDP datagram.
const InfoLimit = 1024

// Info asks every alive node for its info and returns the answers by node
// name, this node's included, once all answered or the timeout passed.
func (m *Membership) Info(ctx context.Context, timeout time.Duration) (map[string][]byte, error) {
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	if s == nil {
		return nil, errors.New("gossip is not running yet")
	}
	out := map[string][]byte{}
	if m.cfg.OnInfo != nil {
		out[m.cfg.Name] = m.cfg.OnInfo()
	}
	alive := 0
	for _, mem := range s.Members() {
		if mem.Status == serf.StatusAlive && mem.Name != m.cfg.Name {
			alive++
		}
	}
	if alive == 0 {
		return out, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return out, ctx.Err()
	}
	resp, err := s.Query(queryInfo, nil, &serf.QueryParam{Timeout: timeout})
	if err != nil {
		return out, fmt.Errorf("ask the farm for its info: %w", err)
	}
	defer resp.Close()
	for got := 0; got < alive; {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return out, nil
			}
			if r.From == m.cfg.Name {
				continue
			}
			out[r.From] = r.Payload
			got++
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// answerQuery answers another node's query: an action (which it runs) or a
// request for this node's info.
func (m *Membership) answerQuery(q *serf.Query) {
	if q.Name == queryInfo {
		if m.cfg.OnInfo == nil {
			return
		}
		b := m.cfg.OnInfo()
		if len(b) > InfoLimit {
			b = b[:0]
		}
		if err := q.Respond(b); err != nil {
			m.log.Debug("Answering an info query failed.", "err", err)
		}
		return
	}
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
