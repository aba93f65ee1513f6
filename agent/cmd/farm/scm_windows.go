package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kardianos/service"
	"golang.org/x/sys/windows/svc/mgr"
)

const (
	serviceName        = "farm"
	serviceDisplayName = "Farm clustering agent"
	serviceDescription = "Shares a virtual IP across the web farm and serves this node's share of the clients."

	// scmStartWait bounds how long Start waits for the node to be ready
	// before reporting Running anyway (a slow join).
	scmStartWait = 20 * time.Second
	// scmStopWait bounds Stop: the agent's own graceful stop is bounded
	// by shutdownBound, but the service control manager gives a service
	// about 20 s (WaitToKillServiceTimeout) before it gives up on it.
	scmStopWait = 20 * time.Second
)

// serviceConfig is the Windows service: started automatically at boot,
// restarted by the SCM when it fails (the recovery actions are completed by
// setRecovery), running `farm agent --config FILE`.
func serviceConfig(o serviceOptions) *service.Config {
	return &service.Config{
		Name:        serviceName,
		DisplayName: serviceDisplayName,
		Description: serviceDescription,
		Executable:  o.bin,
		Arguments:   []string{"agent", "--config", o.config},
		Option: service.KeyValue{
			"StartType":              "automatic",
			"DelayedAutoStart":       false,
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "2s",
			"OnFailureResetPeriod":   86400,
		},
	}
}

// serviceProgram runs the agent under the Windows service manager: Start
// runs the same runAgent as a terminal does and waits (bounded) until the
// node is ready, Stop cancels its context and waits (bounded). If the agent
// stops by itself the process exits non-zero without reporting Stopped, which
// the SCM counts as a failure: its recovery actions restart the service.
type serviceProgram struct {
	cfgPath string
	logs    logSink
	log     *slog.Logger // until the config says how to log
	cancel  context.CancelFunc
	done    chan struct{}
}

func (p *serviceProgram) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		err := runAgent(ctx, p.cfgPath, runOptions{logs: p.logs, ready: func() { close(ready) }})
		if ctx.Err() == nil {
			p.log.Error("Agent stopped by itself; exiting with an error so the service manager restarts it.", "err", err)
			os.Exit(1)
		}
		close(p.done)
	}()
	select {
	case <-ready:
	case <-time.After(scmStartWait):
		p.log.Warn("The node is not ready yet; reporting the service as running anyway.", "waited", scmStartWait)
	}
	return nil
}

func (p *serviceProgram) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(scmStopWait):
		// An error here would make the SCM count a requested stop as a
		// failure and restart the service.
		p.log.Error("The agent did not stop in time; exiting anyway (farm cleanup removes leftovers).", "waited", scmStopWait)
	}
	return nil
}

// runUnderServiceManager hands control to the Windows SCM when it started
// the agent; it reports false when the agent runs from a terminal. Under the
// SCM the log goes to the Application event log (source "farm"), each
// record under its level.
func runUnderServiceManager(cfgPath string, logs logSink) (bool, error) {
	if service.Interactive() {
		return false, nil
	}
	p := &serviceProgram{cfgPath: cfgPath}
	s, err := service.New(p, serviceConfig(serviceOptions{config: cfgPath}))
	if err != nil {
		return true, err
	}
	if el, err := s.Logger(nil); err == nil {
		logs.emit = func(l slog.Level, msg string) {
			switch {
			case l >= slog.LevelError:
				_ = el.Error(msg)
			case l >= slog.LevelWarn:
				_ = el.Warning(msg)
			default:
				_ = el.Info(msg)
			}
		}
	}
	p.logs = logs
	p.log = logs.logger("text", slog.LevelInfo)
	return true, s.Run()
}

// controlOnly is the service.Interface of the `farm service` commands, which
// install and control the service but never run the agent themselves.
type controlOnly struct{}

func (controlOnly) Start(service.Service) error { return nil }
func (controlOnly) Stop(service.Service) error  { return nil }

// scmService is the agent's Windows service.
type scmService struct {
	o serviceOptions
	s service.Service
}

func newServiceManager(o serviceOptions) (serviceManager, error) {
	if o.root != "" || o.init != "" {
		return nil, errors.New("--root and --init are for Linux: on Windows the service control manager is the only service manager")
	}
	s, err := service.New(controlOnly{}, serviceConfig(o))
	if err != nil {
		return nil, err
	}
	return &scmService{o: o, s: s}, nil
}

func (w *scmService) say(format string, a ...any) { fmt.Fprintf(w.o.out, format+"\n", a...) }

func (w *scmService) install() error {
	if _, err := w.s.Status(); err == nil {
		return fmt.Errorf("service install: %w: the service %q exists (farm service status shows it; farm service uninstall removes it)", errAlreadyInstalled, serviceName)
	}
	if err := w.s.Install(); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("service install: %w: %v", errAlreadyInstalled, err)
		}
		return fmt.Errorf("service install: registering the service failed: %w (run it from an elevated prompt: Run as administrator)", err)
	}
	if err := setRecovery(); err != nil {
		uerr := w.s.Uninstall()
		return fmt.Errorf("service install: setting its recovery actions failed, so the service is removed again (%v): %w", uerr, err)
	}
	w.say("installed the service %q (automatic start, restarted on failure; not started: farm service start)", serviceName)
	return nil
}

// setRecovery makes the SCM restart the service after every failure, with
// a growing delay, and count an exit with an error as a failure, not only a
// crash.
func setRecovery() error {
	m, err := mgr.Connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(serviceName)
	if err != nil {
		return err
	}
	defer s.Close()
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 2 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 10 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
	}
	if err := s.SetRecoveryActions(actions, uint32((24 * time.Hour).Seconds())); err != nil {
		return err
	}
	return s.SetRecoveryActionsOnNonCrashFailures(true)
}

func (w *scmService) uninstall() error {
	st, err := w.s.Status()
	if errors.Is(err, service.ErrNotInstalled) {
		return fmt.Errorf("service uninstall: not installed (no service %q)", serviceName)
	}
	if err == nil && st == service.StatusRunning {
		if err := w.s.Stop(); err != nil {
			return fmt.Errorf("service uninstall: stopping the service failed, nothing removed: %w", err)
		}
	}
	if err := w.s.Uninstall(); err != nil {
		return fmt.Errorf("service uninstall: %w (run it from an elevated prompt)", err)
	}
	w.say("uninstalled the service %q", serviceName)
	return nil
}

func (w *scmService) control(action string, f func() error) error {
	if err := f(); err != nil {
		if errors.Is(err, service.ErrNotInstalled) {
			return fmt.Errorf("service %s: not installed: farm service install first", action)
		}
		return fmt.Errorf("service %s: %w (the Application event log, source farm, says why)", action, err)
	}
	w.say("service %s: done", action)
	return nil
}

func (w *scmService) start() error   { return w.control("start", w.s.Start) }
func (w *scmService) stop() error    { return w.control("stop", w.s.Stop) }
func (w *scmService) restart() error { return w.control("restart", w.s.Restart) }

func (w *scmService) status() (serviceState, error) {
	st, err := w.s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		w.say("farm: not installed (farm service install installs it)")
		return stateNotInstalled, nil
	case err != nil:
		return stateStopped, fmt.Errorf("service status: %w", err)
	case st == service.StatusRunning:
		w.say("farm: running")
		return stateRunning, nil
	}
	w.say("farm: stopped")
	return stateStopped, nil
}
