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

// runAgent is the one start path of `farm agent`, whether a person started it
// in a terminal or a service manager did (systemd; on Windows the SCM through
// serviceProgram): it loads the config, runs the node until ctx ends or a
// signal asks it to stop, and returns the agent's error, so a failed
// component makes the process exit non-zero and Restart=on-failure fires.
//
// Signals: SIGHUP reloads the config (a bad file is refused whole and the
// running config stays); the first SIGINT or SIGTERM stops gracefully within
// shutdownBound; a second one exits at once.
func runAgent(ctx context.Context, path string, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log = log.With("node", cfg.Node.Name)
	setProcs(cfg.Filter.Queues, log)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go handleSignals(ctx, cancel, done, path, a, log)
	if err := a.Run(ctx); err != nil {
		log.Error("Agent stopped with an error.", "err", err)
		return err
	}
	log.Info("Agent stopped.")
	return nil
}

// handleSignals serves the agent's signals until done is closed.
func handleSignals(ctx context.Context, stop context.CancelFunc, done <-chan struct{}, path string, a *agent.Agent, log *slog.Logger) {
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
			reload(path, a, log)
		case s := <-term:
			if bound != nil {
				log.Error("Second signal: exiting now; run farm cleanup to remove leftovers.", "signal", s.String())
				os.Exit(2)
			}
			log.Info("Signal received: shutting down gracefully (send again to force).", "signal", s.String())
			stop()
			t := time.NewTimer(shutdownBound)
			defer t.Stop()
			bound = t.C
		case <-bound:
			log.Error("Graceful shutdown took too long: exiting now; run farm cleanup to remove leftovers.", "bound", shutdownBound)
			os.Exit(1)
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

// reload re-reads the config and applies what can change at run time.
func reload(path string, a *agent.Agent, log *slog.Logger) {
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("Reload refused: the config has errors; keeping the running one.", "err", err)
		return
	}
	if err := a.Reload(cfg); err != nil {
		log.Error("Reload failed.", "err", err)
		return
	}
	log.Info("Config reloaded.", "path", path)
}
