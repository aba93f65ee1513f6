package nfqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
)

// Queue settings. The queue length absorbs a burst of new flows; the
// receive buffer keeps the kernel from overflowing the socket meanwhile.
// No write timeout on verdicts: a netlink send to the kernel does not
// block, and arming a deadline costs a timer update per packet.
const (
	maxQueueLen = 4096
	readBuffer  = 4 << 20
)

// Run installs the farm's kernel rules, opens the queues (rules and sockets go
// in the network namespace of the calling thread), answers every queued packet
// until ctx ends, then closes the queues, removes the rules and returns nil.
// It returns an error if the rules cannot be installed or removed, or a queue
// cannot be opened or stops receiving; packets queued while nobody listens are
// dropped by the kernel (no fail-open), so a dead engine serves nobody, and
// rules a crashed agent left keep dropping until the next start or `farm
// cleanup` replaces them. Call Run once.
func (e *Engine) Run(ctx context.Context) (err error) {
	if err := rules.Install(ctx, e.spec); err != nil {
		return fmt.Errorf("install filter rules: %w", err)
	}
	e.log.Info("Filter rules installed.", "vips", len(e.spec.VIPs), "rules", len(e.spec.Rules))
	defer func() {
		if rerr := rules.Remove(context.WithoutCancel(ctx)); rerr != nil {
			e.log.Error("Removing filter rules failed; run farm cleanup.", "err", rerr)
			if err == nil {
				err = fmt.Errorf("remove filter rules: %w (run farm cleanup)", rerr)
			}
			return
		}
		e.log.Info("Filter rules removed.")
	}()
	return e.serve(ctx)
}

// serve answers the queues until ctx ends.
func (e *Engine) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var open []*nfqueue.Nfqueue
	defer func() {
		cancel() // stop the receive loops before closing their sockets
		for _, nf := range open {
			_ = nf.Close()
		}
	}()
	logger := nfLogger{ctx: ctx, log: e.log}
	for i := range e.queues {
		q := e.queue + i
		nf, err := nfqueue.Open(&nfqueue.Config{
			NfQueue:      q,
			MaxPacketLen: MaxPacketLen,
			MaxQueueLen:  maxQueueLen,
			Copymode:     nfqueue.NfQnlCopyPacket,
			// Flags stay 0: the library's fail-open flag would accept packets when
			// the queue is full, letting every node answer (fail closed).
			Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("filter engine: open NFQUEUE %d: %w (needs root or CAP_NET_ADMIN)", q, err)
		}
		open = append(open, nf)
		if err := nf.Con.SetReadBuffer(readBuffer); err != nil {
			e.log.Warn("Could not enlarge the NFQUEUE socket buffer.", "queue", q, "error", err)
		}
	}
	fatal := make(chan error, len(open))
	for i, nf := range open {
		q := e.queue + uint16(i)
		if err := nf.RegisterWithErrorFunc(ctx, e.hook(nf), e.onError(ctx, q, fatal)); err != nil {
			return fmt.Errorf("filter engine: bind NFQUEUE %d: %w (is another process bound to it? stop it or pick another queue)", q, err)
		}
	}
	close(e.ready)
	e.log.Info("Filter engine listening.", "first_queue", e.queue, "queues", e.queues, "self", e.d.Self())
	select {
	case <-ctx.Done():
		e.log.Info("Filter engine stopped.", "accepted", e.accepted.Load(), "dropped", e.dropped.Load(), "reset", e.reset.Load(), "errors", e.errors.Load())
		return nil
	case err := <-fatal:
		e.log.Error("Filter engine failed; new flows are dropped until it restarts.", "error", err)
		return err
	}
}

// hook returns the per-packet callback of one queue (the library calls it
// from that queue's receive goroutine).
func (e *Engine) hook(nf *nfqueue.Nfqueue) nfqueue.HookFunc {
	markOpt := nfqueue.WithMark(filter.Mark(e.d.Self())) // built once, not per packet
	return func(a nfqueue.Attribute) int {
		start := time.Now()
		if a.PacketID == nil {
			e.errors.Add(1)
			return 0
		}
		var pkt []byte
		if a.Payload != nil {
			pkt = *a.Payload
		}
		var err error
		// The packet's time is when it arrived (the kernel stamps it when
		// anything on the host asked for timestamps), else now: a planned
		// switch compares it with its times.
		at := start
		if a.Timestamp != nil {
			at = *a.Timestamp
		}
		switch e.decide(pkt, at.UnixNano()).Verdict {
		case filter.Accept:
			err = nf.SetVerdictWithOption(*a.PacketID, nfqueue.NfAccept, markOpt)
		case filter.Reset:
			// No mark: the flow stays nobody's in conntrack, and the local
			// stack, which has no socket for it, answers with a reset.
			err = nf.SetVerdict(*a.PacketID, nfqueue.NfAccept)
		default:
			err = nf.SetVerdict(*a.PacketID, nfqueue.NfDrop)
		}
		if err != nil {
			e.errors.Add(1)
			e.log.Warn("Could not send an NFQUEUE verdict; the packet stays queued.", "error", err)
		}
		e.lat.observe(time.Since(start))
		return 0
	}
}

// onError decides, for a receive error of queue q, whether to go on.
func (e *Engine) onError(ctx context.Context, q uint16, fatal chan<- error) nfqueue.ErrorFunc {
	return func(err error) int {
		if ctx.Err() != nil {
			return 1 // shutting down: the read deadline was moved on purpose
		}
		if errors.Is(err, unix.ENOBUFS) {
			// The socket overflowed: the kernel dropped the packets it could
			// not deliver (clients retry their SYN). Keep going.
			if e.overflowed() {
				e.log.Warn("NFQUEUE socket overflowed; some new flows were dropped.", "queue", q, "errors", e.errors.Load())
			}
			return 0
		}
		var op *netlink.OpError
		if errors.As(err, &op) && (op.Timeout() || op.Temporary()) {
			return 0
		}
		e.errors.Add(1)
		fatal <- fmt.Errorf("filter engine: NFQUEUE %d: receive: %w", q, err)
		return 1
	}
}

// nfLogger routes the library's printf-style messages to slog: as warnings
// while running, as debug noise once shutting down (it reports its own
// stop as an error).
type nfLogger struct {
	ctx context.Context
	log *slog.Logger
}

func (l nfLogger) Debugf(format string, args ...any) {
	l.log.Debug("NFQUEUE library message.", "detail", fmt.Sprintf(format, args...))
}

func (l nfLogger) Errorf(format string, args ...any) {
	level := slog.LevelWarn
	if l.ctx.Err() != nil {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "NFQUEUE library reported an error.", "detail", fmt.Sprintf(format, args...))
}
