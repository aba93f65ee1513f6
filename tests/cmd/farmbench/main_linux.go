// Command farmbench measures the farm in the network-namespace lab
// (tests/lab): throughput and CPU per request through the VIP, side by side
// with no filter, the kernel's cluster filters and HAProxy (compare); what
// a SIGKILLed agent's node does on the wire and in conntrack (kill); the
// time clients need to succeed again after a node dies (failover), and how
// long a keep-alive client of a dead node waits for an answer (recovery).
// Every subcommand builds its own labs (prefix "bench"), tears them down on
// exit and on SIGINT/SIGTERM/SIGHUP, prints tables (or JSON with -json) and
// needs root. tests/bench.sh runs compare for `make bench`; tests/BENCH.md
// says what is measured and how.
//
//	farmbench compare  [-duration 10s] [-runs 3] [-cases ...] [-modes keep-alive,close,udp,udp-new] [-kill=true]
//	farmbench kill     [-rate 1000] [-before 3s] [-after 5s] [-victim 2] [-trials 1]
//	farmbench wrk      [-duration 10s] [-runs 3] [-threads 2] [-conns 50] [-sources 2] [-cases ...]
//	farmbench failover [-trials 10] [-mode kill|link] [-extra TOML]... [-rate 200] [-timeout 300ms]
//	farmbench recovery [-trials 5] [-extra TOML] [-timeout 1s]
//
// Two more run inside lab namespaces, started by the scenarios: `farmbench
// load` (the load generator: 64 client addresses, keep-alive, close, UDP)
// and `farmbench udpecho` (the nodes' UDP responder).
//
// Common flags of every subcommand: -json (JSON instead of tables), -o FILE
// (JSON to a file as well), -farm PATH (default <repo>/bin/farm), -keep
// (keep the labs' run dirs and logs).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// prefix names every lab farmbench builds; CleanupStale(prefix) at start
// removes what a killed earlier run left behind.
const prefix = "bench"

const usage = `usage: farmbench COMMAND [flags]

commands:
  compare    one table: no filter (a), the farm with the kernel (b) and NFQUEUE (b')
             engines, xt_cluster and nft jhash (c), HAProxy (d); keep-alive, close
             and UDP from 64 client addresses; req/s, CPU per request, ratios, the
             issue 9 targets; then the kill scenario on (b)
  kill       new connections from 64 sources; SIGKILL web2's agent (kernel engine);
             SYN-ACKs per client SYN on the client's switch port, and the dead
             node's conntrack after the kill
  wrk        throughput through the VIP (wrk, keep-alive and Connection: close):
             one node without any filter vs a 3-node farm (affinity ip, ip-port,
             and ip with several client sources); ratio farm/baseline
  failover   steady load of new connections from many sources; SIGKILL web2's
             agent (-mode kill) or cut its link (-mode link); time until every
             source succeeds again; p50 and max over trials, per gossip setting
  recovery   a keep-alive client served by web2; web2 dies (agent killed, link
             down); time until the client gets an answer from another node

common flags (after the command): -json, -o FILE (JSON to a file too), -farm PATH, -keep
run "farmbench COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// The lab's helpers: the load generator and the UDP responder run
	// inside lab namespaces, started by the scenarios below.
	switch args[0] {
	case "load":
		return runLoad(args[1:], stdout, stderr)
	case "udpecho":
		return runUDPEcho(args[1:], stderr)
	}
	cmds := map[string]func(*bench, []string) (any, error){
		"wrk":      runWrk,
		"failover": runFailover,
		"recovery": runRecovery,
		"compare":  runCompare,
		"kill":     runKill,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "farmbench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "farmbench: needs root (network namespaces, nginx, the agent); run it with sudo")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		<-ctx.Done()
		// A second signal now takes the default action (exit at once); the
		// next run's CleanupStale removes what is left.
		stop()
	}()
	if err := lab.CleanupStale(prefix); err != nil {
		fmt.Fprintf(stderr, "farmbench: removing labs of an earlier run: %v\n", err)
	}
	b := &bench{ctx: ctx, name: args[0], stdout: stdout, stderr: stderr}
	res, err := cmd(b, args[1:])
	if cerr := b.closeLabs(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("tear down labs: %w", cerr))
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "farmbench %s: interrupted; labs removed\n", args[0])
		return 130
	}
	if res != nil && (b.json || b.jsonOut != "") {
		js, jerr := json.MarshalIndent(res, "", "  ")
		if jerr != nil {
			fmt.Fprintf(stderr, "farmbench %s: encode JSON: %v\n", args[0], jerr)
			return 1
		}
		js = append(js, '\n')
		if b.json {
			_, _ = stdout.Write(js)
		}
		if b.jsonOut != "" {
			if werr := os.WriteFile(b.jsonOut, js, 0o644); werr != nil {
				fmt.Fprintf(stderr, "farmbench %s: %v\n", args[0], werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "farmbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// bench is one farmbench run: its context (ended by a signal), its common
// flags and the labs it built, all removed when the run ends.
type bench struct {
	ctx    context.Context
	name   string
	stdout io.Writer
	stderr io.Writer

	json    bool
	jsonOut string
	farmBin string
	keep    bool

	mu   sync.Mutex
	labs []*lab.Lab
}

// flags returns a flag set with the common flags bound to b.
func (b *bench) flags(usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(b.name, flag.ContinueOnError)
	fs.SetOutput(b.stderr)
	fs.Usage = func() {
		fmt.Fprintf(b.stderr, "usage: farmbench %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	fs.BoolVar(&b.json, "json", false, "print the results as JSON on stdout instead of tables")
	fs.StringVar(&b.jsonOut, "o", "", "also write the JSON results to this file")
	fs.StringVar(&b.farmBin, "farm", "", "agent binary (default <repo>/bin/farm)")
	fs.BoolVar(&b.keep, "keep", false, "keep the labs' run dirs (configs, agent logs) under "+lab.RunBase)
	return fs
}

// parse parses args and rejects positional arguments.
func (b *bench) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// logf reports progress on stderr, so stdout holds only the results.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "%s farmbench %s: %s\n", time.Now().Format("15:04:05.000"), b.name, fmt.Sprintf(format, args...))
}

// out is where the tables go: stdout, or nowhere with -json.
func (b *bench) out() io.Writer {
	if b.json {
		return io.Discard
	}
	return b.stdout
}

// newLab builds a lab of n nodes with the bench prefix; closeLabs removes
// it. Building is bounded to a minute.
func (b *bench) newLab(n int) (*lab.Lab, error) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{Nodes: n, Prefix: prefix, FarmBin: b.farmBin, KeepRunDir: b.keep})
	if err != nil {
		return nil, fmt.Errorf("build a %d-node lab: %w", n, err)
	}
	b.mu.Lock()
	b.labs = append(b.labs, l)
	b.mu.Unlock()
	b.logf("lab %s up (%d nodes, run dir %s)", l.ID, n, l.RunDir)
	return l, nil
}

// closeLab removes one lab now (so the next one is measured alone).
func (b *bench) closeLab(l *lab.Lab) error {
	err := l.Close()
	if err == nil && b.keep {
		b.logf("lab %s removed; its run dir %s is kept", l.ID, l.RunDir)
	}
	return err
}

// closeLabs removes every lab of the run (Close is idempotent).
func (b *bench) closeLabs() error {
	b.mu.Lock()
	labs := b.labs
	b.labs = nil
	b.mu.Unlock()
	var errs []error
	for _, l := range labs {
		if err := b.closeLab(l); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", l.ID, err))
		}
	}
	return errors.Join(errs...)
}

// sleep waits d or until the run is interrupted.
func (b *bench) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-t.C:
		return nil
	}
}

// machine describes where the numbers were taken: they mean little without
// it (2 noisy vCPUs shared with other work, say).
type machine struct {
	CPUs      int       `json:"nproc"`
	Kernel    string    `json:"kernel"`
	CPUModel  string    `json:"cpu_model"`
	LoadStart string    `json:"loadavg_start"`
	LoadEnd   string    `json:"loadavg_end,omitempty"`
	OtherNS   int       `json:"other_namespaces"`
	FarmBin   string    `json:"farm_bin"`
	FarmBuilt time.Time `json:"farm_bin_mtime"`
	Wrk       string    `json:"wrk,omitempty"`
	Start     time.Time `json:"start"`
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Start: time.Now()}
	m.Kernel = readTrim("/proc/sys/kernel/osrelease")
	m.LoadStart = readTrim("/proc/loadavg")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	// Namespaces of other labs or tests mean other work competes for the CPUs.
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), prefix) {
				m.OtherNS++
			}
		}
	}
	if out, err := exec.Command("wrk", "--version").CombinedOutput(); len(out) > 0 || err == nil {
		m.Wrk = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return m
}

func (m *machine) finish() { m.LoadEnd = readTrim("/proc/loadavg") }

// setFarm records the agent binary a lab runs.
func (m *machine) setFarm(l *lab.Lab) {
	m.FarmBin = l.FarmBin()
	if p, err := filepath.Abs(m.FarmBin); err == nil {
		m.FarmBin = p
	}
	if st, err := os.Stat(m.FarmBin); err == nil {
		m.FarmBuilt = st.ModTime()
	}
}

func (m machine) String() string {
	s := fmt.Sprintf("machine: nproc %d, kernel %s, %s; loadavg at start %s", m.CPUs, m.Kernel, m.CPUModel, m.LoadStart)
	if m.LoadEnd != "" {
		s += ", at end " + m.LoadEnd
	}
	if m.OtherNS > 0 {
		s += fmt.Sprintf("\n  note: %d other network namespaces existed at start (other labs or tests may share the CPUs)", m.OtherNS)
	}
	s += fmt.Sprintf("\n  agent: %s (built %s)", m.FarmBin, m.FarmBuilt.Format(time.RFC3339))
	return s
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
