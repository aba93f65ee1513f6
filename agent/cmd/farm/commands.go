package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/filter/vip"
)

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "farm",
		Short:         "In-host farm clustering: every node shares a virtual IP and serves its share of the clients",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.Version = buildVersion().short()
	root.SetVersionTemplate("farm {{.Version}}\n")
	root.AddCommand(agentCmd(), checkCmd(), keygenCmd(), passwdCmd(), certCmd(), cleanupCmd(), statusCmd(), planCmd(), serviceCmd(), versionCmd(),
		actionCmd("stop", "Stop nodes: they take no new connections and leave the farm's table (kept across restarts)"),
		actionCmd("start", "Start nodes: they take their share again"),
		actionCmd("drain", "Drain nodes: no new connections; they become stopped when their flows end"))
	return root
}

// newLogger is the text logger on stderr of the commands other than agent.
func newLogger(level string) (*slog.Logger, error) {
	lv, err := parseLevel("--log-level", level)
	if err != nil {
		return nil, err
	}
	return stderrSink(level).logger("text", lv), nil
}

// setProcs runs the Go scheduler with one P per NFQUEUE reader unless
// GOMAXPROCS is set. The verdict path is one goroutine per queue; more Ps
// only add thread hand-offs (futex wake-ups) between the netlink read and
// the verdict. Measured in the lab (2 vCPU, Connection: close): 1 P instead
// of 2 took the farm from 0.23 to 0.30 of the no-filter baseline and the
// agents' CPU per connection from 277 to 194 us.
func setProcs(queues int, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" || queues < 1 {
		return
	}
	if queues < runtime.NumCPU() {
		runtime.GOMAXPROCS(queues)
		log.Debug("Scheduler sized to the queues.", "gomaxprocs", queues)
	}
}

func agentCmd() *cobra.Command {
	var path, level string
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run this node's agent",
		Long: "Run this node's agent in the foreground until SIGINT or SIGTERM (SIGHUP reloads the config).\n" +
			"The log goes to stderr in the config's [log] format and level; --log-level overrides the level.\n" +
			"Under systemd (Type=notify) it reports READY=1 once the node is in the farm, and text logs leave\n" +
			"the time to the journal.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if level != "" {
				if _, err := parseLevel("--log-level", level); err != nil {
					return err
				}
			}
			sink := stderrSink(level)
			if managed, err := runUnderServiceManager(path, sink); managed {
				return err
			}
			return runAgent(context.Background(), path, runOptions{logs: sink})
		},
	}
	c.Flags().StringVar(&path, "config", "/etc/farm/farm.toml", "config file")
	c.Flags().StringVar(&level, "log-level", "", "debug, info, warn or error: overrides [log] level (default: the config's, else info)")
	return c
}

func checkCmd() *cobra.Command {
	var path string
	var offline bool
	c := &cobra.Command{
		Use:   "check",
		Short: "Validate a config file and this host for it, and print the effective config",
		Long: "Validate a config file (every key, every default) and, unless --offline, check it against this host:\n" +
			"the gossip key file (readable, a valid key, chmod 600), the VIP interfaces, the console password file,\n" +
			"the app scripts and the state directory. Every problem is listed, each naming its key. Host checks run\n" +
			"once the file itself is valid. Run it as the agent's user.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			if !offline {
				if err := cfg.CheckHost(); err != nil {
					return hostProblems(path, err)
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), cfg.Effective())
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: ok\n", path)
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "/etc/farm/farm.toml", "config file")
	c.Flags().BoolVar(&offline, "offline", false, "check the file only, not this host (key file, interfaces, scripts)")
	return c
}

// hostProblems names the file and counts the problems, as config.Load does
// for the file's own problems.
func hostProblems(path string, err error) error {
	n := 1
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n = len(j.Unwrap())
	}
	if n > 1 {
		return fmt.Errorf("config %s: %d problems on this host (--offline skips these checks):\n%w", path, n, err)
	}
	return fmt.Errorf("config %s: on this host (--offline skips this check): %w", path, err)
}

func keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip key (base64, 32 bytes) for gossip.key_file",
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := config.NewKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k)
			return nil
		},
	}
}

func cleanupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Remove rules, VIP links and addresses a crashed agent left behind",
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, _ := newLogger("info")
			ctx := cmd.Context()
			var msgs []string
			if err := rules.Cleanup(ctx); err != nil {
				msgs = append(msgs, "rules: "+err.Error())
			}
			if err := vip.Cleanup(ctx, log); err != nil {
				msgs = append(msgs, "vip: "+err.Error())
			}
			if len(msgs) > 0 {
				return fmt.Errorf("cleanup incomplete: %s", strings.Join(msgs, "; "))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "cleanup: done")
			return nil
		},
	}
}

func passwdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Read a console password from the terminal (or stdin) and print its bcrypt hash for console.password_file",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pw []byte
			var err error
			if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
				fmt.Fprint(cmd.ErrOrStderr(), "Console password: ")
				pw, err = term.ReadPassword(fd)
				fmt.Fprintln(cmd.ErrOrStderr())
			} else {
				var line string
				_, err = fmt.Fscanln(cmd.InOrStdin(), &line)
				pw = []byte(line)
			}
			if err != nil {
				return fmt.Errorf("read password: %w", err)
			}
			if len(pw) < 8 {
				return fmt.Errorf("password too short: use at least 8 characters")
			}
			h, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return nil
		},
	}
}
