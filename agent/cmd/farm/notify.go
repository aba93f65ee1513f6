package main

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd how the agent is doing over NOTIFY_SOCKET
// (Type=notify): READY=1 once the node is in the farm, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 when shutdown begins, and WATCHDOG=1
// at half of WatchdogSec= while it runs. Without NOTIFY_SOCKET (a terminal,
// another service manager) every message is dropped silently.
type notifier struct {
	log *slog.Logger
	// send is daemon.SdNotify without unsetting NOTIFY_SOCKET: every
	// message re-reads it, and the watchdog keeps needing it.
	send  func(state string) (bool, error)
	ready atomic.Bool // READY=1 was sent
}

func newNotifier(log *slog.Logger) *notifier {
	return &notifier{log: log, send: func(s string) (bool, error) { return daemon.SdNotify(false, s) }}
}

func (n *notifier) notify(state string) {
	if _, err := n.send(state); err != nil {
		n.log.Warn("Telling systemd the agent's state failed (NOTIFY_SOCKET).", "state", strings.SplitN(state, "\n", 2)[0], "err", err)
	}
}

// run sends READY=1 once ready is closed (never before: systemd then
// considers the node started), WATCHDOG=1 when the service manager asked
// for it, and STOPPING=1 when ctx ends, which is when shutdown begins; it
// returns once STOPPING=1 is sent. onReady, if not nil, runs after READY=1.
func (n *notifier) run(ctx context.Context, ready <-chan struct{}, onReady func()) {
	var tick <-chan time.Time
	if every, err := daemon.SdWatchdogEnabled(false); err != nil {
		n.log.Warn("The service manager's watchdog settings are unusable; not sending watchdog pings.", "err", err)
	} else if every > 0 {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		tick = t.C
		n.notify(daemon.SdNotifyWatchdog)
	}
	for {
		select {
		case <-ready:
			ready = nil
			n.notify(daemon.SdNotifyReady + "\nSTATUS=In the farm.")
			n.ready.Store(true)
			if onReady != nil {
				onReady()
			}
		case <-tick:
			n.notify(daemon.SdNotifyWatchdog)
		case <-ctx.Done():
			n.notify(daemon.SdNotifyStopping + "\nSTATUS=Leaving the farm (the VIP and the guard stay for the established connections).")
			return
		}
	}
}

// reloading and reloaded frame a SIGHUP reload, once the node is ready:
// before that a READY=1 would announce a node that is not up yet.
func (n *notifier) reloading() bool {
	if !n.ready.Load() {
		return false
	}
	n.notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
	return true
}

func (n *notifier) reloaded() { n.notify(daemon.SdNotifyReady) }
