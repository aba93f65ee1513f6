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
	ok   atomic.Bool
}

func newWitness(addr string, log *slog.Logger) *witness {
	w := &witness{addr: addr, log: log}
	w.ok.Store(true)
	return w
}

// OK reports the last verdict; it is called on every view change.
func (w *witness) OK() bool { return w.ok.Load() }

// run probes every 500 ms; two failures in a row make the witness
// unreachable, one success reachable again. onChange runs on every flip.
func (w *witness) run(ctx context.Context, onChange func()) {
	fails := 0
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := w.probe(ctx)
		was := w.ok.Load()
		switch {
		case err == nil:
			fails = 0
			w.ok.Store(true)
		default:
			fails++
			if fails >= 2 {
				w.ok.Store(false)
			}
		}
		if now := w.ok.Load(); now != was {
			w.log.Info("Witness reachability changed.", "witness", w.addr, "reachable", now, "err", err)
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
	ctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancel()
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
