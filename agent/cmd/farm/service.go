package main

import (
	"fmt"
	"path/filepath"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"

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

func serviceConfig(cfgPath string) *service.Config {
	return &service.Config{
		Name:        "farm",
		DisplayName: "Farm clustering agent",
		Description: "Shares a virtual IP across the web farm and serves this node's share of the clients.",
		Arguments:   []string{"agent", "--config", cfgPath},
		Option:      service.KeyValue{"SystemdScript": systemdUnit, "OnFailure": "restart", "DelayedAutoStart": false},
	}
}

// controlOnly is the service.Interface of the `farm service` commands, which
// install and control the service but never run the agent themselves.
type controlOnly struct{}

func (controlOnly) Start(service.Service) error { return nil }
func (controlOnly) Stop(service.Service) error  { return nil }

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
			s, err := service.New(controlOnly{}, serviceConfig(abs))
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
