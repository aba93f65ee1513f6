// Command farmlab brings the demo farm up and down in network namespaces on
// this machine (see tests/lab) and pokes at it: `make demo` runs `farmlab up`.
//
//	farmlab [-prefix farmdemo] up [-nodes 3] [-agents auto|yes|no] [-farm bin/farm]
//	farmlab [-prefix farmdemo] down
//	farmlab [-prefix farmdemo] burst [-n 64] [-per 4]
//	farmlab [-prefix farmdemo] exec HOST [command...]
//	farmlab [-prefix farmdemo] info
//
// The lab's state (lab.json, pid files, configs, logs) lives in
// /run/farmlab/<id>/, so `down` works from any later shell, also after an
// `up` that failed half way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

const usage = `usage: farmlab [-prefix P] COMMAND [flags]

commands:
  up [-nodes 3] [-agents auto|yes|no] [-farm PATH] [-client-addrs 64]
                                        build the demo farm: nginx on every node, and
                                        bin/farm agent on every node if it is built
  down                                  kill the lab's processes, delete its namespaces
  burst [-n 64] [-per 4]                requests from n client addresses per family to
                                        the VIP; prints which node answered
  exec HOST [command...]                run a command (default a shell) in HOST:
                                        client, switch, web1..webN
  status                                farm status as web1's agent sees it
  info                                  names, addresses, processes and logs
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("farmlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	prefix := fs.String("prefix", "farmdemo", "name prefix of the lab's namespaces and run dir")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "farmlab: needs root (network namespaces); run it with sudo")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	var err error
	switch cmd {
	case "up":
		err = up(ctx, *prefix, rest, stdout, stderr)
	case "down":
		err = down(*prefix, stdout)
	case "burst":
		err = burst(ctx, *prefix, rest, stdout, stderr)
	case "exec":
		err = execIn(*prefix, rest)
	case "info":
		err = info(*prefix, stdout)
	case "status":
		err = farmStatus(ctx, *prefix, stdout)
	case "console-proxy":
		err = consoleProxy(ctx, *prefix, rest, stderr)
	default:
		fmt.Fprintf(stderr, "farmlab: unknown command %q\n\n", cmd)
		fs.Usage()
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "farmlab %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func up(ctx context.Context, prefix string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "number of nodes")
	clients := fs.Int("client-addrs", 64, "client source addresses per family")
	agents := fs.String("agents", "auto", "start bin/farm agent on every node: auto (if built), yes, no")
	farmBin := fs.String("farm", "", "agent binary (default <repo>/bin/farm)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dirs, err := lab.Find(prefix); err != nil {
		return err
	} else if len(dirs) > 0 {
		return fmt.Errorf("a lab is already up (%s); see `farmlab info`, or `farmlab down` first", strings.Join(dirs, ", "))
	}
	// Leftovers without a manifest (a crash very early in a previous up).
	if err := lab.CleanupPrefix(prefix); err != nil {
		return fmt.Errorf("remove leftovers of an earlier run: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	l, err := lab.New(bctx, lab.Options{Nodes: *nodes, ClientAddrs: *clients, Prefix: prefix, FarmBin: *farmBin})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("and cleaning up: %w", cerr))
		}
		return err
	}
	for i := 1; i <= *nodes; i++ {
		if err := l.StartNginx(i); err != nil {
			return fail(err)
		}
	}
	startAgents := false
	switch *agents {
	case "yes":
		if !l.HaveFarm() {
			return fail(fmt.Errorf("%s not found: run `make build` first", l.FarmBin()))
		}
		startAgents = true
	case "auto":
		startAgents = l.HaveFarm()
	case "no":
	default:
		return fail(fmt.Errorf("-agents %q: want auto, yes or no", *agents))
	}
	password := ""
	if startAgents {
		pw, hashFile, err := demoConsole(l)
		if err != nil {
			return fail(err)
		}
		password = pw
		for i := 1; i <= *nodes; i++ {
			if _, err := l.StartAgent(i, l.NodeConfig(i, demoAgentConfig(l, i, hashFile))); err != nil {
				return fail(err)
			}
		}
		if err := startConsoleProxies(l, prefix); err != nil {
			return fail(err)
		}
	}
	if startAgents {
		fmt.Fprintf(stdout, "Waiting for the %d agents to see each other...\n", *nodes)
		if err := waitFarm(ctx, l, *nodes); err != nil {
			fmt.Fprintf(stderr, "farmlab up: %v (logs: %s/web*/agent.log)\n", err, l.RunDir)
		}
	}
	// Leave everything running: the children are in their own sessions.
	printInfo(stdout, &l.Layout)
	fmt.Fprintln(stdout)
	if startAgents {
		fmt.Fprintf(stdout, "Agents started on every node (logs: %s/web*/agent.log).\n", l.RunDir)
		fmt.Fprintf(stdout, "\nConsole (any node shows the whole farm; log in with the password):\n")
		for i := 1; i <= *nodes; i++ {
			fmt.Fprintf(stdout, "  web%d  http://127.0.0.1:%d/\n", i, consolePortBase+i)
		}
		fmt.Fprintf(stdout, "  password: %s   (also in %s/console.password)\n", password, l.RunDir)
		fmt.Fprintf(stdout, "  from a shell: curl -s -c /tmp/farm.cookies -d password=%s http://127.0.0.1:%d/login && curl -s -b /tmp/farm.cookies http://127.0.0.1:%d/api/v1/status\n",
			password, consolePortBase+1, consolePortBase+1)
	} else {
		fmt.Fprintf(stdout, "No agents started (%s not built): nobody holds the VIP yet.\n", l.FarmBin())
	}
	fmt.Fprintf(stdout, `Look at it:
  farmlab burst                               # who answers the VIP, per client address
  farmlab exec client curl -s http://%s/
  farmlab exec client curl -s http://[%s]/
  farmlab exec web1 %s status --config %s
  farmlab exec web1                           # a shell on web1
  farmlab down                                # remove it all
`, l.VIP4, l.VIP6, l.FarmBin(), l.AgentConfigPath(1))
	return nil
}

func down(prefix string, stdout io.Writer) error {
	dirs, _ := lab.Find(prefix)
	if err := lab.CleanupPrefix(prefix); err != nil {
		return err
	}
	if len(dirs) == 0 {
		fmt.Fprintf(stdout, "no %s lab was up (leftovers, if any, removed)\n", prefix)
		return nil
	}
	for _, d := range dirs {
		fmt.Fprintf(stdout, "removed lab %s\n", filepath.Base(d))
	}
	return nil
}

// openLab opens the one lab of this prefix.
func openLab(prefix string) (*lab.Lab, error) {
	dirs, err := lab.Find(prefix)
	if err != nil {
		return nil, err
	}
	switch len(dirs) {
	case 0:
		return nil, fmt.Errorf("no %s lab is up (farmlab up)", prefix)
	case 1:
		return lab.Open(dirs[0])
	default:
		return nil, fmt.Errorf("several %s labs are up (%s): farmlab down, then up", prefix, strings.Join(dirs, ", "))
	}
}

func burst(ctx context.Context, prefix string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("burst", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 64, "client source addresses per family")
	per := fs.Int("per", 4, "requests per source address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := openLab(prefix)
	if err != nil {
		return err
	}
	take := func(a []netip.Addr) []netip.Addr { return a[:min(*n, len(a))] }
	v4 := l.Burst(ctx, take(l.ClientAddrs4), *per, l.VIPURL)
	v6 := l.Burst(ctx, take(l.ClientAddrs6), *per, l.VIPURL)
	var all lab.Result
	all.Merge(v4)
	all.Merge(v6)
	fmt.Fprintf(stdout, "%d requests to %s and %s from %d+%d client addresses, new connection each:\n\n",
		all.Requests, l.VIP4, l.VIP6, len(take(l.ClientAddrs4)), len(take(l.ClientAddrs6)))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tIPv4\tIPv6\ttotal\tshare\tsources\t")
	for _, node := range all.Nodes() {
		srcs := 0
		for _, m := range all.PerSource {
			if m[node] > 0 {
				srcs++
			}
		}
		share := 100 * float64(all.PerNode[node]) / float64(max(all.OK(), 1))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%d\t\n", node, v4.PerNode[node], v6.PerNode[node], all.PerNode[node], share, srcs)
	}
	fmt.Fprintf(tw, "failed\t%d\t%d\t%d\t\t\t\n", len(v4.Failures), len(v6.Failures), len(all.Failures))
	_ = tw.Flush()
	if split := all.Split(); len(split) > 0 {
		fmt.Fprintf(stdout, "\n%d source addresses were answered by more than one node (e.g. %s)\n", len(split), split[0])
	}
	if len(all.Failures) > 0 {
		fmt.Fprintf(stdout, "\nfirst failure: %s\n", all.Failures[0])
	}
	return nil
}

func execIn(prefix string, args []string) error {
	if len(args) == 0 {
		return errors.New("want a host: client, switch, web1..webN")
	}
	l, err := openLab(prefix)
	if err != nil {
		return err
	}
	ns, err := l.ResolveNS(args[0])
	if err != nil {
		return err
	}
	cmd := args[1:]
	if len(cmd) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		cmd = []string{sh}
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("ip not found (apt-get install iproute2): %w", err)
	}
	// Replace this process, so the terminal, signals and exit status are
	// the command's own.
	return syscall.Exec(ip, append([]string{"ip", "netns", "exec", ns}, cmd...), os.Environ())
}

func info(prefix string, stdout io.Writer) error {
	l, err := openLab(prefix)
	if err != nil {
		return err
	}
	printInfo(stdout, &l.Layout)
	fmt.Fprintln(stdout, "\nprocesses (pid files):")
	files, _ := filepath.Glob(filepath.Join(l.RunDir, "pids", "*.pid"))
	slices.Sort(files)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		pid := strings.Fields(string(b) + " ?")[0]
		state := "exited"
		if _, err := os.Stat("/proc/" + pid); err == nil {
			state = "running"
		}
		fmt.Fprintf(stdout, "  %-14s pid %-8s %s\n", strings.TrimSuffix(filepath.Base(f), ".pid"), pid, state)
	}
	return nil
}

func printInfo(w io.Writer, l *lab.Layout) {
	fmt.Fprintf(w, "lab %s (state in %s)\n", l.ID, l.RunDir)
	fmt.Fprintf(w, "VIP %s and %s (vmac, claimed by the agents)\n\n", l.VIP4, l.VIP6)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "host\tnamespace\tIPv4\tIPv6\tMAC\tswitch port")
	for _, h := range append(append([]lab.Host(nil), l.Nodes...), l.Client) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.NS, h.Addr4, h.Addr6, h.MAC, h.Port)
	}
	fmt.Fprintf(tw, "switch\t%s\t\t\t\tbridge %s\n", l.Switch.NS, l.Switch.Bridge)
	_ = tw.Flush()
	if len(l.ClientAddrs4) > 0 {
		fmt.Fprintf(w, "\nclient source addresses: %s..%s and %s..%s (%d per family)\n",
			l.ClientAddrs4[0], l.ClientAddrs4[len(l.ClientAddrs4)-1],
			l.ClientAddrs6[0], l.ClientAddrs6[len(l.ClientAddrs6)-1], len(l.ClientAddrs4))
	}
}

// waitFarm waits (30 s at most) until every node's agent reports n nodes up.
func waitFarm(ctx context.Context, l *lab.Lab, n int) error {
	nodes := make([]int, n)
	for i := range nodes {
		nodes[i] = i + 1
	}
	return lab.Poll(ctx, 30*time.Second, func() error { return l.Converged(ctx, nodes, n) })
}

// farmStatus prints `farm status` as web1's agent sees it.
func farmStatus(ctx context.Context, prefix string, stdout io.Writer) error {
	l, err := openLab(prefix)
	if err != nil {
		return err
	}
	out, err := l.Exec(ctx, l.Node(1).NS, l.FarmBin(), "status", "--config", l.AgentConfigPath(1))
	fmt.Fprintf(stdout, "farm status, as web1 sees it:\n%s", out)
	return err
}
