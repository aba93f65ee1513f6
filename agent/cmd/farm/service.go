package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"

	"github.com/webfarm/farm/agent"
	"github.com/webfarm/farm/agent/config"
)

// systemdUnit replaces kardianos' default unit: restart quickly on failure
// (a node out of the farm costs capacity) and run `farm cleanup` before start
// and after stop so a crashed agent's rules never outlive it by more than a
// restart.
const systemdUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network-online.target
Wants=network-online.target

[Service]
ExecStartPre=-{{Path | cmdEscape}} cleanup
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
ExecStopPost=-{{Path | cmdEscape}} cleanup
Restart=on-failure
RestartSec=1
TimeoutStopSec=30
KillMode=mixed

[Install]
WantedBy=multi-user.target
`

// program adapts the agent to the service manager (systemd, Windows SCM).
type program struct {
	cfgPath string
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan error
}

func (p *program) Start(service.Service) error {
	cfg, err := config.Load(p.cfgPath)
	if err != nil {
		return err
	}
	setProcs(cfg.Filter.Queues, p.log)
	a, err := agent.New(cfg, p.log.With("node", cfg.Node.Name))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() { p.done <- a.Run(ctx) }()
	return nil
}

func (p *program) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	return <-p.done
}

func serviceConfig(cfgPath string) *service.Config {
	return &service.Config{
		Name:        "farm",
		DisplayName: "Farm clustering agent",
		Description: "Shares a virtual IP across the web farm and serves this node's share of the clients.",
		Arguments:   []string{"agent", "--config", cfgPath},
		Option:      service.KeyValue{"SystemdScript": systemdUnit, "OnFailure": "restart", "DelayedAutoStart": false},
	}
}

// runAsService hands control to the service manager when the agent was
// started by one (Windows SCM, systemd) rather than from a terminal.
func runAsService(cfgPath string, log *slog.Logger) error {
	s, err := service.New(&program{cfgPath: cfgPath, log: log}, serviceConfig(cfgPath))
	if err != nil {
		return err
	}
	return s.Run()
}

func serviceCmd() *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:       "service install|uninstall|start|stop|restart",
		Short:     "Install or control the agent as a systemd unit or Windows service",
		Args:      cobra.ExactArgs(1),
		ValidArgs: service.ControlAction[:],
		RunE: func(cmd *cobra.Command, args []string) error {
			abs, err := filepath.Abs(cfgPath)
			if err != nil {
				return err
			}
			if args[0] == "install" {
				if _, err := config.Load(abs); err != nil {
					return fmt.Errorf("refusing to install with a bad config: %w", err)
				}
			}
			s, err := service.New(&program{cfgPath: abs}, serviceConfig(abs))
			if err != nil {
				return err
			}
			if err := service.Control(s, args[0]); err != nil {
				return fmt.Errorf("service %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service %s: done\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "/etc/farm/farm.toml", "config file the service runs with")
	return c
}
