// Package agent wires one farm node together: configuration, the data path
// (rules, NFQUEUE engine, VIP claim), membership, and the shutdown order that
// keeps the farm consistent while a node comes and goes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/member"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/filter/vip"
)

// Agent is one running node.
type Agent struct {
	cfg     *config.Config
	log     *slog.Logger
	spec    rules.Spec
	vips    []vip.Config
	decider *filter.Decider
	members *member.Membership
	console *console.Server
	monitor *checkers.Monitor
	events  *events.Ring
	witness *witness

	// drainTimeout bounds how long a drain waits for flows to end.
	drainTimeout time.Duration
	// runCtx is Run's context, for background work started by actions.
	runCtx context.Context

	mu          sync.Mutex
	intent      Intent
	appFailed   bool
	weight      uint32 // current weight: the config's, or a reload's
	drainCancel context.CancelFunc
	lastNodes   []member.Node
	view        member.View
	handoff     handoff
	// intended is the table the farm wants now; the data path may lag it
	// by the handoff delay. intendedReal is false while this node serves
	// nobody because it has not joined or has no quorum.
	intended     *table.Table
	intendedReal bool
	resetOpen    bool
	resetUntil   time.Time
	// leaving is set at shutdown: the node answers no new connection from
	// then on, before the others hear that it left.
	leaving bool
}

// applyTable gives the data path the table to use now: nothing before the
// node joined or while it has no quorum, else the farm's table with buckets
// gained from live nodes withheld for the handoff delay.
func (a *Agent) applyTable() {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view
	if v.Table == nil {
		return
	}
	self := a.spec.Self
	alive := map[uint8]bool{}
	for _, n := range v.Nodes {
		if n.Alive && n.ID != 0 {
			alive[n.ID] = true
		}
	}
	if !v.Joined || !v.Quorum || a.leaving {
		a.intended, a.intendedReal = &table.Table{}, false
		a.decider.SetTable(a.intended)
		return
	}
	prev := a.intended
	if !a.intendedReal {
		// Coming back (start, rejoin, healed partition): the others served
		// our buckets meanwhile; treat them as their previous owners.
		var others []member.Node
		for _, n := range v.Nodes {
			if n.ID != self {
				others = append(others, n)
			}
		}
		prev = table.Compute(member.Owners(others))
	}
	now := time.Now()
	eff, next := a.handoff.apply(prev, v.Table, self, func(id uint8) bool { return alive[id] }, now)
	a.intended, a.intendedReal = v.Table, true
	a.decider.SetTable(eff)
	if !next.IsZero() {
		time.AfterFunc(time.Until(next), a.applyTable)
	}
	// Dead means failed, not gone gracefully: a node that left (agent
	// restart, shutdown) still serves its established flows from its
	// kernel, and resetting them would cut healthy connections.
	var dead []uint8
	for _, n := range v.Nodes {
		if n.ID != 0 && !n.Alive && !n.Left && slices.Contains(prev[:], n.ID) && !slices.Contains(dead, n.ID) {
			dead = append(dead, n.ID)
		}
	}
	a.openResets(filter.TakeoverOf(prev, v.Table, self, dead...), now)
}

// openResets starts (or extends) the reset window for buckets just taken
// over from dead nodes, and schedules its end. Caller holds a.mu.
func (a *Agent) openResets(tk *filter.Takeover, now time.Time) {
	window := a.cfg.Filter.ResetWindow.Duration
	if tk == nil || window <= 0 {
		return
	}
	until := now.Add(window)
	merged := filter.Takeover{}
	if cur := a.decider.Takeover(); cur != nil {
		merged = *cur
	}
	for b := range uint16(table.Buckets) {
		if tk.Has(b) {
			merged.Set(b)
		}
	}
	a.decider.SetTakeover(&merged)
	if !a.resetOpen {
		if err := rules.SetReset(a.runCtx, a.spec, true); err != nil {
			a.log.Error("Opening the reset window failed: orphaned clients will wait for their own timeout.", "err", err)
			a.decider.SetTakeover(nil)
			return
		}
		a.resetOpen = true
	}
	a.resetUntil = until
	a.log.Info("Resetting the dead node's orphaned connections.", "buckets", tk.Len(), "until", until.Format(time.RFC3339))
	time.AfterFunc(window, a.closeResets)
}

// closeResets ends the reset window once its last extension has passed.
func (a *Agent) closeResets() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.resetOpen || time.Now().Before(a.resetUntil) {
		return
	}
	if err := rules.SetReset(context.WithoutCancel(a.runCtx), a.spec, false); err != nil {
		a.log.Error("Closing the reset window failed.", "err", err)
	}
	a.decider.SetTakeover(nil)
	a.resetOpen = false
	a.log.Info("Reset window closed.")
}

// New converts a validated config into the components' settings and checks it
// against this host (interfaces exist, key readable). It installs nothing.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, drainTimeout: cfg.Node.DrainTimeout.Duration, runCtx: context.Background()}
	var errs []error
	intent, err := loadIntent(cfg.StateDir)
	if err != nil {
		errs = append(errs, err)
	}
	a.intent = intent
	spec := rules.Spec{Self: uint8(cfg.Node.ID), Queue: uint16(cfg.Filter.Queue), Queues: uint16(cfg.Filter.Queues)}
	for i, v := range cfg.VIP {
		addr, err := netip.ParseAddr(v.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip[%d].address: %w", i, err))
			continue
		}
		if _, err := net.InterfaceByName(v.Interface); err != nil {
			errs = append(errs, fmt.Errorf("vip[%d].interface: %q not found on this host (ip link lists interfaces)", i, v.Interface))
		}
		mode, err := vip.ParseMode(v.Mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip[%d].mode: %w", i, err))
		}
		spec.VIPs = append(spec.VIPs, addr)
		a.vips = append(a.vips, vip.Config{Addr: addr, Interface: v.Interface, Mode: mode})
	}
	for i, r := range cfg.Rule {
		fr, err := filterRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule[%d]: %w", i, err))
			continue
		}
		spec.Rules = append(spec.Rules, fr)
	}
	key, err := config.ReadKeyFile(cfg.Gossip.KeyFile)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a.spec = spec
	a.handoff.delay = cfg.Gossip.HandoffDelay.Duration
	// Build the table's per-id orders now (up to 0.3 s for high ids), not on
	// the first membership change when a takeover is waiting for it.
	table.Compute([]table.Member{{ID: spec.Self, Weight: 1}})
	a.decider = filter.NewDecider(spec.Self, spec.Rules)
	var witnessOK func() bool
	if cfg.Gossip.Witness != "" {
		a.witness = newWitness(cfg.Gossip.Witness, log.With("component", "witness"))
		witnessOK = a.witness.OK
	}
	weight := uint32(100)
	if cfg.Node.Weight != nil {
		weight = uint32(*cfg.Node.Weight)
	}
	a.weight = weight
	a.members = member.New(member.Config{
		Name: cfg.Node.Name, ID: uint8(cfg.Node.ID), Weight: weight,
		Bind: cfg.Gossip.Bind, Advertise: cfg.Gossip.Advertise, Join: cfg.Gossip.Join, Key: key,
		RetryInterval: cfg.Gossip.RetryInterval.Duration,
		ProbeInterval: cfg.Gossip.ProbeInterval.Duration, ProbeTimeout: cfg.Gossip.ProbeTimeout.Duration,
		SuspicionMult: cfg.Gossip.SuspicionMult,
		State:         effectiveState(intent, false),
		OnAction:      a.onAction,
		WitnessOK:     witnessOK,
	}, log.With("component", "member"), a.onView)
	a.events = events.NewRing(0, log.With("component", "events"))
	var specs []checkers.Spec
	for _, c := range cfg.Checker {
		specs = append(specs, checkers.Spec{
			Name: c.Name, Type: c.Type, Target: c.Target, Interval: c.Interval.Duration, Timeout: c.Timeout.Duration,
			Fall: c.Fall, Rise: c.Rise, Action: c.Action, Expect: c.Expect, Body: c.Body, Host: c.Host, SkipVerify: c.SkipVerify,
		})
	}
	firstVIP := ""
	if len(spec.VIPs) > 0 {
		firstVIP = spec.VIPs[0].String()
	}
	mon, err := checkers.New(specs, checkers.AppScripts{
		Start: cfg.App.Start, Stop: cfg.App.Stop, Timeout: cfg.App.Timeout.Duration,
		MaxRestarts: cfg.App.MaxRestarts, Window: cfg.App.RestartWindow.Duration,
	},
		a, a.events, cfg.Node.Name, firstVIP, log)
	if err != nil {
		return nil, err
	}
	a.monitor = mon
	srv, err := console.New(cfg.Console.Listen, cfg.Console.PasswordFile, a, log.With("component", "console"))
	if err != nil {
		return nil, err
	}
	a.console = srv
	return a, nil
}

func filterRule(r config.Rule) (filter.Rule, error) {
	var fr filter.Rule
	var err error
	if fr.Proto, err = filter.ParseProto(r.Proto); err != nil {
		return fr, fmt.Errorf("proto: %w", err)
	}
	ports, err := filter.ParsePorts(r.Ports)
	if err != nil {
		return fr, fmt.Errorf("ports: %w", err)
	}
	fr.Ports = ports
	if fr.Affinity, err = filter.ParseAffinity(r.Affinity); err != nil {
		return fr, fmt.Errorf("affinity: %w", err)
	}
	return fr, nil
}

// onView hands every new owner table to the data path.
func (a *Agent) onView(v member.View) {
	a.mu.Lock()
	prev := a.lastNodes
	a.lastNodes = v.Nodes
	a.view = v
	a.mu.Unlock()
	a.applyTable()
	for _, e := range stateEvents(prev, v.Nodes, v.Shares) {
		a.events.Add(e)
	}
}

// Run brings the node into the farm and keeps it there until ctx ends.
// Order matters: the rules go in first so that, from the moment the VIP is
// claimed, traffic is either decided by us or dropped (fail closed); on the way
// out we leave the farm first (peers take over at once), then release the VIP,
// then remove the rules.
func (a *Agent) Run(ctx context.Context) error {
	log := a.log
	a.runCtx = ctx
	// A crashed agent left its VIP and its rules: the rules still drop
	// (fail closed). Remove the VIP first, then replace the rules in one
	// transaction: removing the rules first would leave the VIP answered
	// by every node's stack for a moment.
	if err := vip.Cleanup(ctx, log.With("component", "vip")); err != nil {
		log.Warn("Removing leftover VIP set-up failed.", "err", err)
	}
	if err := rules.Install(ctx, a.spec); err != nil {
		return fmt.Errorf("install filter rules: %w", err)
	}
	log.Info("Filter rules installed.", "vips", len(a.spec.VIPs), "rules", len(a.spec.Rules))
	defer func() {
		if err := rules.Remove(context.WithoutCancel(ctx)); err != nil {
			log.Error("Removing filter rules failed; run farm cleanup.", "err", err)
		} else {
			log.Info("Filter rules removed.")
		}
	}()

	engine := filter.NewEngine(a.decider, a.spec.Queue, a.spec.Queues, log.With("component", "filter"))
	claim := vip.New(a.vips, log.With("component", "vip"))

	dataCtx, stopData := context.WithCancel(context.WithoutCancel(ctx))
	defer stopData()
	memberCtx, stopMembers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMembers()

	g, gctx := errgroup.WithContext(dataCtx)
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error {
		// Claim the VIP only once every queue listens: before that, SYNs
		// would be dropped by a queue nobody reads.
		select {
		case <-engine.Ready():
		case <-gctx.Done():
			return nil
		}
		return claim.Run(gctx, func() { log.Info("VIPs claimed.", "vips", a.spec.VIPs) })
	})
	if a.intent != IntentUp {
		log.Info("Node stays out of the farm: an operator stopped it (farm start NODE brings it back).", "intent", a.intent)
		a.monitor.Pause()
	}
	if a.cfg.App.Start != "" && a.intent == IntentUp {
		r := a.monitor.StartApp(ctx)
		log.Info("Application start script ran.", "exit", r.ExitCode, "took", r.Duration.Round(time.Millisecond), "err", r.Err)
	}
	if a.witness != nil {
		go a.witness.run(memberCtx, a.members.Refresh)
	}
	memberDone := make(chan error, 1)
	go func() { memberDone <- a.members.Run(memberCtx) }()
	monitorDone := make(chan error, 1)
	go func() { monitorDone <- a.monitor.Run(memberCtx) }()
	consoleCtx, stopConsole := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsole()
	consoleDone := make(chan error, 1)
	go func() { consoleDone <- a.console.Run(consoleCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case <-gctx.Done():
		runErr = g.Wait()
		if runErr == nil {
			runErr = errors.New("data path stopped unexpectedly")
		}
	case err := <-memberDone:
		memberDone <- err
		runErr = fmt.Errorf("membership: %w", err)
	case err := <-consoleDone:
		consoleDone <- err
		runErr = err
	}
	log.Info("Shutting down: no new connections, then leaving the farm.")
	a.mu.Lock()
	a.leaving = true
	a.mu.Unlock()
	a.applyTable()
	stopMembers()
	if err := <-memberDone; err != nil && runErr == nil {
		runErr = err
	}
	<-monitorDone
	stopData()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
		runErr = err
	}
	stopConsole()
	<-consoleDone
	return runErr
}
