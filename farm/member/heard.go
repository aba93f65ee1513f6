package member

import (
	"errors"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlist keeps each node's suspect state in a private field (the
// exported Node.State it hands out is never updated), so this node cannot
// ask it whom it suspects. What a node cut off from the farm can notice
// by itself is silence: a node in a farm receives gossip packets all the
// time (acks of its own probes every probe interval, the others' probes,
// their gossip), and one whose gossip is cut off receives none. heard
// records, per source address, when a gossip packet last arrived, by
// wrapping memberlist's UDP transport; the membership loop turns a silence
// from every peer into suspicion of every peer, so the cut-off node loses
// quorum and stops answering on its own, in about as long as the majority
// needs to declare it dead.
type heard struct {
	inner   *memberlist.NetTransport
	ch      chan *memberlist.Packet
	streams chan net.Conn
	// stopping is closed when Shutdown starts: from then on the forwarders
	// drop what they cannot hand on at once and keep draining the inner
	// transport, whose Shutdown waits for listeners that may be blocked
	// handing it a packet; done is closed once it has returned.
	stopping, done chan struct{}
	stopOnce       sync.Once

	mu   sync.Mutex
	last map[string]time.Time

	// cut makes the transport drop everything, both ways, as a broken
	// gossip link would: tests cut a node off with it.
	cut atomic.Bool
}

// heardLimit bounds the addresses remembered between two polls: packets
// come from anywhere on the gossip port (a stranger's are dropped by
// memberlist only after this), and the map must not grow with them.
const heardLimit = 1024

func newHeard(bindAddr string, bindPort int, logger *log.Logger) (*heard, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bindAddr},
		BindPort:  bindPort,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	h := &heard{inner: nt, ch: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		stopping: make(chan struct{}), done: make(chan struct{}), last: map[string]time.Time{}}
	go h.forward()
	go h.forwardStreams()
	return h, nil
}

// forward passes every packet on to memberlist, noting its source first.
func (h *heard) forward() {
	in := h.inner.PacketCh()
	for {
		select {
		case p := <-in:
			if h.cut.Load() {
				continue
			}
			h.note(p.From, p.Timestamp)
			select {
			case h.ch <- p:
			case <-h.stopping: // memberlist may have stopped reading: drop it
			}
		case <-h.done:
			return
		}
	}
}

// forwardStreams passes incoming TCP streams (push-pull, TCP pings) on,
// unless the node is cut off.
func (h *heard) forwardStreams() {
	in := h.inner.StreamCh()
	for {
		select {
		case c := <-in:
			if h.cut.Load() {
				_ = c.Close()
				continue
			}
			select {
			case h.streams <- c:
			case <-h.stopping:
				_ = c.Close()
			}
		case <-h.done:
			return
		}
	}
}

var errCut = errors.New("gossip cut off (test)")

func (h *heard) note(from net.Addr, at time.Time) {
	if from == nil {
		return
	}
	k := from.String()
	h.mu.Lock()
	if _, ok := h.last[k]; ok || len(h.last) < heardLimit {
		h.last[k] = at
	}
	h.mu.Unlock()
}

// take returns when each of addrs was last heard (zero if never) and
// forgets every other address.
func (h *heard) take(addrs []string) []time.Time {
	out := make([]time.Time, len(addrs))
	keep := make(map[string]time.Time, len(addrs))
	h.mu.Lock()
	for i, a := range addrs {
		out[i] = h.last[a]
		if !out[i].IsZero() {
			keep[a] = out[i]
		}
	}
	h.last = keep
	h.mu.Unlock()
	return out
}

// The memberlist.NodeAwareTransport methods: all but PacketCh and Shutdown
// are the NetTransport's.

func (h *heard) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return h.inner.FinalAdvertiseAddr(ip, port)
}
func (h *heard) WriteTo(b []byte, addr string) (time.Time, error) {
	if h.cut.Load() {
		return time.Now(), nil
	}
	return h.inner.WriteTo(b, addr)
}
func (h *heard) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if h.cut.Load() {
		return time.Now(), nil
	}
	return h.inner.WriteToAddress(b, a)
}
func (h *heard) PacketCh() <-chan *memberlist.Packet { return h.ch }
func (h *heard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if h.cut.Load() {
		return nil, errCut
	}
	return h.inner.DialTimeout(addr, timeout)
}
func (h *heard) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if h.cut.Load() {
		return nil, errCut
	}
	return h.inner.DialAddressTimeout(a, timeout)
}
func (h *heard) StreamCh() <-chan net.Conn { return h.streams }
func (h *heard) Shutdown() error {
	var err error
	h.stopOnce.Do(func() {
		close(h.stopping)
		err = h.inner.Shutdown() // its listeners exit: nothing more arrives
		close(h.done)
	})
	return err
}

// silence is the pure rule: given when each live peer was last heard (or,
// if later, first seen) and how long a silence counts, it reports whether
// this node is cut off, that is every peer has been silent that long.
// A single silent peer proves nothing (it may just be dead, and the others
// declare it so); a farm of one has nobody to be cut off from.
func silence(last []time.Time, now time.Time, after time.Duration) bool {
	if len(last) == 0 {
		return false
	}
	for _, t := range last {
		if now.Sub(t) <= after {
			return false
		}
	}
	return true
}
