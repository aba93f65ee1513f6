package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/webfarm/farm/farm/view"
)

// hostWatch finds out, for each node the farm declared dead, whether its
// host is gone or only its agent. Gossip cannot tell the two apart, and
// they call for opposite things: a host that lives (its agent crashed or
// was killed, and systemd restarts it within a second) goes on serving
// its established flows from its kernel, and resetting them from here
// would cut healthy connections; a host that is gone leaves its clients'
// connections hanging until their own timeouts unless the new owners
// answer them with a reset. The probe is a TCP connection to the dead
// node's gossip address: a host whose agent died answers at once with a
// refusal (its kernel is alive); a host that is down, or cut off, answers
// nothing. A node found alive is probed again every second while it stays
// dead, so a host that goes down later is noticed.
type hostWatch struct {
	log     *slog.Logger
	kick    func()
	timeout time.Duration
	every   time.Duration
	dial    func(ctx context.Context, addr string) error

	mu      sync.Mutex
	down    map[uint8]bool
	probing map[uint8]probe
	wg      sync.WaitGroup
}

type probe struct {
	addr   string
	cancel context.CancelFunc
}

func newHostWatch(log *slog.Logger, kick func()) *hostWatch {
	return &hostWatch{
		log: log, kick: kick, timeout: 300 * time.Millisecond, every: time.Second,
		dial: func(ctx context.Context, addr string) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		},
		down: map[uint8]bool{}, probing: map[uint8]probe{},
	}
}

// hostAnswered is the pure rule: a connection or a refusal means a kernel
// answered at the address; anything else (no answer within the timeout,
// unreachable) means the host is gone.
func hostAnswered(err error) bool {
	return err == nil || errors.Is(err, errRefused)
}

// update starts probing the nodes dead in v, stops for those no longer
// dead, and returns which dead nodes' hosts are known to be down.
func (h *hostWatch) update(ctx context.Context, v view.View) map[uint8]bool {
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
			delete(h.down, id)
		}
	}
	for id := range h.down {
		if _, ok := dead[id]; !ok {
			delete(h.down, id)
		}
	}
	for id, addr := range dead {
		if _, ok := h.probing[id]; ok || h.down[id] {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		h.probing[id] = probe{addr: addr, cancel: cancel}
		h.wg.Go(func() { h.run(pctx, id, addr) })
	}
	out := make(map[uint8]bool, len(h.down))
	for id := range h.down {
		out[id] = true
	}
	return out
}

// run probes one dead node until its host is found down or ctx ends.
func (h *hostWatch) run(ctx context.Context, id uint8, addr string) {
	for first := true; ; first = false {
		pctx, cancel := context.WithTimeout(ctx, h.timeout)
		err := h.dial(pctx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if !hostAnswered(err) {
			h.mu.Lock()
			if p, ok := h.probing[id]; ok && p.addr == addr {
				h.down[id] = true
				delete(h.probing, id)
			}
			h.mu.Unlock()
			h.log.Info("A dead node's host does not answer: its orphaned connections will be reset.", "id", id, "addr", addr, "probe", err)
			h.kick()
			return
		}
		if first {
			h.log.Info("A dead node's host still answers (only its agent is gone): its established connections are left alone.", "id", id, "addr", addr)
		}
		t := time.NewTimer(h.every)
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
