package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/webfarm/farm/agent/config"
)

// serviceActions are the words `farm service` takes.
var serviceActions = []string{"install", "uninstall", "start", "stop", "restart", "status"}

// serviceOptions are the flags of `farm service`, resolved.
type serviceOptions struct {
	config string // absolute path of the config the service runs with
	bin    string // absolute path of the binary the service runs
	root   string // write under this directory and contact no service manager ("" = this host)
	init   string // "", "systemd" or "sysv" (Linux only)
	out    io.Writer
}

// serviceManager installs and controls the agent's service on this OS:
// systemd or a SysV init script on Linux, the service control manager on
// Windows.
type serviceManager interface {
	install() error
	uninstall() error
	start() error
	stop() error
	restart() error
	// status prints the service's state and returns it.
	status() (serviceState, error)
}

// serviceState is what `farm service status` found; its exit status
// follows LSB init scripts: 0 running, 3 not running, 4 unknown.
type serviceState int

const (
	stateRunning serviceState = iota
	stateStopped
	stateNotInstalled
)

func (s serviceState) exitStatus() int {
	return [...]int{0, 3, 4}[s]
}

// exitStatus is an error that only sets the process's exit status (its
// message was printed already).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errAlreadyInstalled is wrapped by install when a service is there.
var errAlreadyInstalled = errors.New("already installed")

func serviceCmd() *cobra.Command {
	var cfgPath, bin, root, initSys string
	c := &cobra.Command{
		Use:   "service install|uninstall|start|stop|restart|status",
		Short: "Install or control the agent as a systemd unit (or SysV script) or Windows service",
		Long: `Install or control the agent as a service.

Linux: install writes the systemd unit shipped as scripts/farm.service to
/etc/systemd/system/farm.service (Type=notify, restart on failure, farm cleanup
before start and after stop) and enables it, without starting it. On a host
where systemd is not running it refuses, unless --init sysv: then it writes
/etc/init.d/farm, a SysV script that also cleans up and restarts a failed
agent. --root DIR only writes the files under DIR (an image being built): no
service manager is contacted. A failed install removes what it wrote.

Windows: install registers the service "farm" (automatic start, restarted by
the service control manager on failure, log in the Application event log).

status exits 0 when the agent runs, 3 when it does not, 4 when the service is
not installed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(serviceActions, args[0]) {
				return fmt.Errorf("want one of %v, e.g. farm service install --config /etc/farm/farm.toml", serviceActions)
			}
			return nil
		},
		ValidArgs: serviceActions,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := resolveServiceOptions(cfgPath, bin, root, initSys, args[0])
			if err != nil {
				return err
			}
			o.out = cmd.OutOrStdout()
			if args[0] == "install" {
				if err := checkServiceConfig(o); err != nil {
					return err
				}
			}
			m, err := newServiceManager(o)
			if err != nil {
				return err
			}
			switch args[0] {
			case "install":
				return m.install()
			case "uninstall":
				return m.uninstall()
			case "start":
				return m.start()
			case "stop":
				return m.stop()
			case "restart":
				return m.restart()
			default:
				st, err := m.status()
				if err != nil {
					return err
				}
				if st != stateRunning {
					cmd.SilenceErrors = true
					return exitStatus(st.exitStatus())
				}
				return nil
			}
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "/etc/farm/farm.toml", "config file the service runs with (install)")
	c.Flags().StringVar(&bin, "bin", "", "binary the service runs (install; default: this executable, or /usr/local/bin/farm with --root)")
	c.Flags().StringVar(&root, "root", "", "install or uninstall under this directory only, contacting no service manager (Linux)")
	c.Flags().StringVar(&initSys, "init", "", "systemd or sysv (Linux; default: systemd, refused when systemd is not running)")
	return c
}

func resolveServiceOptions(cfgPath, bin, root, initSys, action string) (serviceOptions, error) {
	o := serviceOptions{root: root, init: initSys}
	switch initSys {
	case "", "systemd", "sysv":
	default:
		return o, fmt.Errorf("--init %q: use systemd or sysv", initSys)
	}
	if root != "" && action != "install" && action != "uninstall" {
		return o, fmt.Errorf("--root applies to install and uninstall only: %s needs the service manager of this host", action)
	}
	if root != "" {
		if !filepath.IsAbs(cfgPath) {
			return o, fmt.Errorf("--config %q: with --root, give the config's absolute path on the target system", cfgPath)
		}
		o.config = filepath.Clean(cfgPath)
	} else {
		abs, err := filepath.Abs(cfgPath)
		if err != nil {
			return o, err
		}
		o.config = abs
	}
	switch {
	case bin != "":
		abs, err := filepath.Abs(bin)
		if err != nil {
			return o, err
		}
		o.bin = abs
	case root != "":
		o.bin = "/usr/local/bin/farm"
	default:
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("cannot tell where this binary is (%v): give its path with --bin", err)
		}
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		o.bin = exe
	}
	return o, nil
}

// checkServiceConfig refuses to install a service that would fail at its
// first start on a bad config file (read under --root when given).
func checkServiceConfig(o serviceOptions) error {
	path := filepath.Join(o.root, o.config)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("refusing to install: config %s: %w (write it first: farm.example.toml is a start, farm check --config %s validates it)", path, err, path)
	}
	if _, err := config.Load(path); err != nil {
		return fmt.Errorf("refusing to install with a bad config (farm check --config %s lists every problem): %w", path, err)
	}
	return nil
}
