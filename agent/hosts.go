package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/view"
)

// hostWatch finds out, for each node the farm declared dead, what is left
// of it at its address (plan.Host). Gossip cannot tell a dead host from a
// dead, frozen or starved agent, and they call for different things: a
// host whose agent died still serves its established flows from its
// kernel, and resetting them would cut healthy connections; an agent that
// is frozen or starved still has its kernel answer its buckets' new flows,
// and taking them would answer SYNs twice; a host that is gone leaves its
// clients hanging unless the new owners reset their connections. The probe
// is a TCP connection to the dead node's gossip address: a refusal means
// the host lives and the agent is gone, an accepted connection that the
// agent's process still holds its port, and no answer that the host is
// down or cut off. A node not found gone is probed again while it stays
// dead, so a frozen agent killed by its watchdog, or a host that dies
// later, is noticed.
type hostWatch struct {
	log     *slog.Logger
	kick    func()
	timeout time.Duration
	every   map[plan.Host]time.Duration
	dial    func(ctx context.Context, addr string) error

	mu      sync.Mutex
	found   map[uint8]plan.Host
	probing map[uint8]probe
	wg      sync.WaitGroup
}

type probe struct {
	addr   string
	cancel context.CancelFunc
}

func newHostWatch(log *slog.Logger, kick func()) *hostWatch {
	return &hostWatch{
		log: log, kick: kick, timeout: 300 * time.Millisecond,
		every: map[plan.Host]time.Duration{plan.HostServing: 250 * time.Millisecond, plan.HostAgentGone: time.Second},
		dial: func(ctx context.Context, addr string) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		},
		found: map[uint8]plan.Host{}, probing: map[uint8]probe{},
	}
}

// hostFound is the pure rule from a probe's outcome to what it means.
func hostFound(err error) plan.Host {
	switch {
	case err == nil:
		return plan.HostServing
	case errors.Is(err, errRefused):
		return plan.HostAgentGone
	}
	return plan.HostGone
}

// update starts probing the nodes dead in v, stops for those no longer
// dead, and returns what was found so far for each dead node.
func (h *hostWatch) update(ctx context.Context, v view.View) map[uint8]plan.Host {
	dead := map[uint8]string{}
	for _, n := range v.Nodes {
		if n.ID != 0 && !n.Alive && !n.Left && n.Addr != "" {
			dead[n.ID] = n.Addr
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, p := range h.probing {
		if addr, ok := dead[id]; !ok || addr != p.addr {
			p.cancel()
			delete(h.probing, id)
			delete(h.found, id)
		}
	}
	for id := range h.found {
		if _, ok := dead[id]; !ok {
			delete(h.found, id)
		}
	}
	for id, addr := range dead {
		if _, ok := h.probing[id]; ok || h.found[id] == plan.HostGone {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		h.probing[id] = probe{addr: addr, cancel: cancel}
		h.wg.Go(func() { h.run(pctx, id, addr) })
	}
	out := make(map[uint8]plan.Host, len(h.found))
	for id, f := range h.found {
		out[id] = f
	}
	return out
}

// run probes one dead node until its host is found gone or ctx ends,
// kicking the planner whenever the finding changes.
func (h *hostWatch) run(ctx context.Context, id uint8, addr string) {
	for {
		pctx, cancel := context.WithTimeout(ctx, h.timeout)
		err := h.dial(pctx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		f := hostFound(err)
		h.mu.Lock()
		p, ok := h.probing[id]
		if !ok || p.addr != addr {
			h.mu.Unlock()
			return
		}
		changed := h.found[id] != f
		h.found[id] = f
		if f == plan.HostGone {
			delete(h.probing, id)
		}
		h.mu.Unlock()
		if changed {
			switch f {
			case plan.HostGone:
				h.log.Info("A dead node's host does not answer: its buckets are taken over and its orphaned connections reset.", "id", id, "addr", addr, "probe", err)
			case plan.HostAgentGone:
				h.log.Info("A dead node's host refuses: only its agent is gone; its buckets are taken over, its established connections left alone.", "id", id, "addr", addr)
			case plan.HostServing:
				h.log.Warn("A node declared dead still holds its gossip port (frozen or starved agent?): its buckets are left to it.", "id", id, "addr", addr)
			}
			h.kick()
		}
		if f == plan.HostGone {
			return
		}
		t := time.NewTimer(h.every[f])
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stop ends every probe and waits for them.
func (h *hostWatch) stop() {
	h.mu.Lock()
	for id, p := range h.probing {
		p.cancel()
		delete(h.probing, id)
	}
	h.mu.Unlock()
	h.wg.Wait()
}
