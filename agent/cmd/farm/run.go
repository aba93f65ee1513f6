package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/webfarm/farm/agent"
	"github.com/webfarm/farm/agent/config"
)

// shutdownBound is how long a graceful stop may take before the process
// exits anyway (systemd's TimeoutStopSec is longer, so the agent, not the
// service manager, decides what is logged).
const shutdownBound = 25 * time.Second

// runOptions are what the caller of runAgent decides.
type runOptions struct {
	// logs says where the log goes; the config's [log] section says how.
	logs logSink
	// ready, if not nil, runs once the node is ready, after systemd was
	// told (the Windows service waits for it before reporting Running).
	ready func()
}

// runAgent is the one start path of `farm agent`, whether a person started it
// in a terminal or a service manager did (systemd; on Windows the SCM through
// serviceProgram): it loads the config, runs the node until ctx ends or a
// signal asks it to stop, and returns the agent's error, so a failed
// component makes the process exit non-zero and Restart=on-failure fires.
//
// Under systemd (Type=notify) it sends READY=1 once the node is in the farm,
// STOPPING=1 when shutdown begins, WATCHDOG=1 when WatchdogSec= is set, and
// RELOADING=1/READY=1 around a reload (see notifier).
//
// Signals: SIGHUP reloads the config (a bad file is refused whole and the
// running config stays); the first SIGINT or SIGTERM stops gracefully within
// shutdownBound; a second one exits at once.
func runAgent(ctx context.Context, path string, o runOptions) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	level, err := o.logs.resolveLevel(cfg.Log.Level)
	if err != nil {
		return err
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	log := o.logs.logger(cfg.Log.Format, lv).With("node", cfg.Node.Name)
	setProcs(cfg.Filter.Queues, log)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := newNotifier(log)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		n.run(ctx, a.Ready(), o.ready)
	}()
	// STOPPING=1 goes out before the process ends, also when the agent
	// stopped by itself (a failed component) rather than on a signal.
	defer func() { <-notified }()
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	r := &reloader{path: path, a: a, log: log, level: lv, logs: o.logs, cur: cfg.Log, n: n}
	go handleSignals(ctx, cancel, done, r, log)
	if err := a.Run(ctx); err != nil {
		log.Error("Agent stopped with an error.", "err", err)
		return err
	}
	log.Info("Agent stopped.")
	return nil
}

// exit ends the process; a variable so a test can watch a forced exit.
var exit = os.Exit

// handleSignals serves the agent's signals until done is closed.
func handleSignals(ctx context.Context, stop context.CancelFunc, done <-chan struct{}, r *reloader, log *slog.Logger) {
	term := make(chan os.Signal, 2)
	hup := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(term)
	defer signal.Stop(hup)
	var bound <-chan time.Time
	stopped := ctx.Done()
	for {
		select {
		case <-done:
			return
		case <-hup:
			r.reload()
		case s := <-term:
			if bound != nil {
				log.Error("Second signal: exiting now; run farm cleanup to remove leftovers.", "signal", s.String())
				exit(2)
			}
			log.Info("Signal received: shutting down gracefully (send again to force).", "signal", s.String())
			stop()
			t := time.NewTimer(shutdownBound)
			defer t.Stop()
			bound = t.C
		case <-bound:
			log.Error("Graceful shutdown took too long: exiting now; run farm cleanup to remove leftovers.", "bound", shutdownBound)
			exit(1)
		case <-stopped:
			stopped = nil     // seen once
			if bound == nil { // stopped by the caller or a failure, not a signal
				t := time.NewTimer(shutdownBound)
				defer t.Stop()
				bound = t.C
			}
		}
	}
}

// reloader applies a SIGHUP: the agent takes what can change at run time,
// and the log level follows [log] level unless --log-level fixed it.
type reloader struct {
	path  string
	a     *agent.Agent
	log   *slog.Logger
	level *slog.LevelVar
	logs  logSink
	cur   config.Log
	n     *notifier
}

// reload re-reads the config and applies what can change at run time.
func (r *reloader) reload() {
	if r.n.reloading() {
		defer r.n.reloaded()
	}
	cfg, err := config.Load(r.path)
	if err != nil {
		r.log.Error("Reload refused: the config has errors; keeping the running one.", "err", err)
		return
	}
	if err := r.a.Reload(cfg); err != nil {
		r.log.Error("Reload failed.", "err", err)
		return
	}
	if lv, err := r.logs.resolveLevel(cfg.Log.Level); err == nil && lv != r.level.Level() {
		r.log.Info("Log level changed.", "from", r.level.Level().String(), "to", lv.String())
		r.level.Set(lv)
	}
	if cfg.Log.Format != r.cur.Format {
		r.log.Warn("Config change needs an agent restart to take effect.", "section", "log", "key", "format")
	}
	r.log.Info("Config reloaded.", "path", r.path)
}
