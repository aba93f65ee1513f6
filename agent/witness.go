package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// witness probes the tie-breaker address (the gateway, say) so that a node
// that lost its peers can tell "they died" (witness still answers: keep
// serving) from "I am cut off" (witness silent too: stop serving).
// An address with a port is probed by TCP connect, a bare address by ICMP echo.
type witness struct {
	addr string
	log  *slog.Logger
	// lastOK is when the witness last answered (unix ns).
	lastOK atomic.Int64
	now    func() time.Time
}

// Witness timing. A node that lost half its peers claims quorum through the
// witness, so "the witness answers" must be fresh: in an even split the cut
// side has to stop before the other side takes its buckets over (the host
// probe, a few hundred ms after the death), so a verdict that lags by the
// probe period and a second failure (up to 1.4 s, as before) let both sides
// serve. Probing every 100 ms and trusting an answer for 350 ms flips a cut
// node within about 350 ms of the cut.
const (
	witnessEvery   = 100 * time.Millisecond
	witnessTimeout = 200 * time.Millisecond
	witnessFresh   = 350 * time.Millisecond
)

func newWitness(addr string, log *slog.Logger) *witness {
	w := &witness{addr: addr, log: log, now: time.Now}
	// Reachable until proved otherwise at start: the first probe decides
	// within witnessFresh.
	w.lastOK.Store(w.now().UnixNano())
	return w
}

// OK reports whether the witness answered within witnessFresh; it is
// called on every view change.
func (w *witness) OK() bool { return witnessOK(w.lastOK.Load(), w.now()) }

// witnessOK is the pure freshness rule.
func witnessOK(lastOK int64, now time.Time) bool {
	return now.UnixNano()-lastOK <= int64(witnessFresh)
}

// run probes every witnessEvery; onChange runs whenever the verdict flips
// (an answer arrives after a silence, or the last answer grows stale).
func (w *witness) run(ctx context.Context, onChange func()) {
	tick := time.NewTicker(witnessEvery)
	defer tick.Stop()
	was := w.OK()
	var lastErr error
	for {
		pctx, cancel := context.WithTimeout(ctx, witnessTimeout)
		if err := w.probe(pctx); err == nil {
			w.lastOK.Store(w.now().UnixNano())
		} else {
			lastErr = err
		}
		cancel()
		if now := w.OK(); now != was {
			was = now
			w.log.Info("Witness reachability changed.", "witness", w.addr, "reachable", now, "err", lastErr)
			onChange()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *witness) probe(ctx context.Context) error {
	if _, _, err := net.SplitHostPort(w.addr); err == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", w.addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return ping(ctx, w.addr)
}

// ping sends one ICMP echo and waits for the matching reply (needs root or
// CAP_NET_RAW, which the agent has for its data path anyway).
func ping(ctx context.Context, addr string) error {
	ip := net.ParseIP(addr)
	network, proto, typ, replyTyp := "ip4:icmp", 1, icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply)
	listen := "0.0.0.0"
	if ip.To4() == nil {
		network, proto, typ, replyTyp, listen = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, "::"
	}
	c, err := icmp.ListenPacket(network, listen)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	id, seq := os.Getpid()&0xffff, int(time.Now().UnixNano()&0xffff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("farm-witness")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: ip}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for range 64 {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != replyTyp {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return nil
		}
	}
	return context.DeadlineExceeded
}
