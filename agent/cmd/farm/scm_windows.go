package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/kardianos/service"
)

// serviceProgram runs the agent under the Windows service manager: Start
// runs the same runAgent as a terminal does, Stop cancels its context and
// waits (bounded). If the agent fails by itself the process exits non-zero,
// so the SCM's recovery actions restart it.
type serviceProgram struct {
	cfgPath string
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
}

func (p *serviceProgram) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		err := runAgent(ctx, p.cfgPath, p.log)
		if err != nil && ctx.Err() == nil {
			p.log.Error("Agent failed; exiting so the service manager restarts it.", "err", err)
			os.Exit(1)
		}
	}()
	return nil
}

func (p *serviceProgram) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-time.After(shutdownBound + 5*time.Second):
		return errors.New("the agent did not stop in time")
	}
}

// runUnderServiceManager hands control to the Windows SCM when it started
// the agent; it reports false when the agent runs from a terminal.
func runUnderServiceManager(cfgPath string, log *slog.Logger) (bool, error) {
	if service.Interactive() {
		return false, nil
	}
	s, err := service.New(&serviceProgram{cfgPath: cfgPath, log: log}, serviceConfig(cfgPath))
	if err != nil {
		return true, err
	}
	return true, s.Run()
}
