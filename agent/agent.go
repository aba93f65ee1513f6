// Package agent wires one farm node together: configuration, the data path
// (an engine following the planner's plans, the VIP claim), membership, the
// checkers and the console, and the start-up and shutdown order that keeps
// the farm consistent while a node comes and goes. Policy lives in the pure
// packages (farm/plan, farm/view, farm/table, checkers' Policy); this package
// only connects them to each other, to timers and to the OS.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/webfarm/farm/agent/config"
	"github.com/webfarm/farm/checkers"
	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/delivery"
	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/member"
	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/filter/vip"
)

// Engine is the data path: Run installs what it needs in the kernel, serves
// until its context ends and removes what it installed; after Ready it
// follows every plan given to Apply. filter/nfqueue is one.
type Engine interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Apply(plan.Plan) error
}

// VIPClaim holds the farm's virtual addresses on this node: Cleanup removes
// what a crashed agent left, Run claims them (calling ready once they are
// held) and releases them when its context ends.
type VIPClaim interface {
	Cleanup(ctx context.Context) error
	Run(ctx context.Context, ready func()) error
}

// Deps are the parts of a node that touch the OS. New fills in the real ones;
// tests give fakes to run an agent without root.
type Deps struct {
	Engine Engine
	VIP    VIPClaim
	// Flows counts this node's established flows to the VIPs (a drain
	// waits for it to reach 0).
	Flows func(ctx context.Context) (int, error)
}

// Agent is one running node.
type Agent struct {
	cfg      *config.Config
	log      *slog.Logger
	engine   Engine
	vip      VIPClaim
	flows    func(ctx context.Context) (int, error)
	settings plan.Settings
	// hostDial replaces the probe of dead nodes' hosts in tests (nil: TCP).
	hostDial func(ctx context.Context, addr string) error
	members  *member.Membership
	console  *console.Server
	monitor  *checkers.Monitor
	events   *events.Ring
	witness  *witness
	local    *local
	tasks    *tasks
	details  details

	// view is the latest farm view; kick tells the planner it changed.
	view     atomic.Pointer[view.View]
	kick     chan struct{}
	leaveReq chan chan struct{}
	// plan is the plan the engine follows, for status.
	plan atomic.Pointer[plan.Plan]
	// lastNodes is the previous view's node list, for state events; only
	// onView touches it, and membership calls onView one view at a time.
	lastNodes []view.Node

	mu          sync.Mutex // guards drainCancel
	drainCancel context.CancelFunc

	// ready is closed once the node is up: rules in, VIP claimed and gossip
	// running (see Ready).
	ready                 chan struct{}
	readyOnce             sync.Once
	vipClaimed, gossiping atomic.Bool
	// stopping is set when shutdown starts: a node on its way out is never
	// reported ready.
	stopping atomic.Bool

	// remembered is the farm state_dir held at start; rememberKick tells
	// rememberLoop the view changed.
	remembered   []string
	rememberKick chan struct{}
}

// Ready is closed once the node is up: its engine decides, its VIPs are
// claimed and its gossip runs. Whether it then serves depends on reaching
// the farm, its state and quorum: a node that waits for a peer fails closed,
// and is still "ready" for a service manager (systemd's READY=1), which
// would otherwise time it out and restart it in a loop.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// checkReady closes ready when every part of it is there.
func (a *Agent) checkReady() {
	if a.vipClaimed.Load() && a.gossiping.Load() && !a.stopping.Load() {
		a.readyOnce.Do(func() {
			a.log.Info("Node ready.")
			close(a.ready)
		})
	}
}

// rejoinDelay is plan.Settings.RejoinDelay: twice the slowest heal
// asymmetry the chaos soak measured (0.48 s).
const rejoinDelay = time.Second

// New checks a loaded config against this host (interfaces, key, password
// file, scripts) and prepares every component with the real OS parts. It
// installs nothing and starts nothing.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	return NewWith(cfg, log, Deps{})
}

// NewWith is New with some OS parts replaced (nil fields get the real ones).
func NewWith(cfg *config.Config, log *slog.Logger, d Deps) (*Agent, error) {
	if err := cfg.CheckHost(); err != nil {
		return nil, err
	}
	intent, err := loadIntent(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	remembered, err := loadFarm(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	key, err := config.ReadKeyFile(cfg.Gossip.KeyFile)
	if err != nil {
		return nil, err
	}
	self := uint8(cfg.Node.ID)
	vips := cfg.VIPs()
	var addrs []netip.Addr
	for _, v := range vips {
		addrs = append(addrs, v.Addr)
	}
	spec := rules.Spec{Self: self, VIPs: addrs, Rules: cfg.Rules(), Queue: uint16(cfg.Filter.Queue), Queues: uint16(cfg.Filter.Queues)}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := platformDeps(&d, cfg, spec, log); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: log, engine: d.Engine, vip: d.VIP, flows: d.Flows,
		settings: plan.Settings{Self: self, HandoffDelay: cfg.Gossip.HandoffDelay.Duration, RejoinDelay: rejoinDelay, ResetWindow: cfg.Filter.ResetWindow.Duration,
			SwitchMargin: cfg.Gossip.SwitchMargin.Duration},
		events:   events.NewRing(0, log.With("component", "events")),
		tasks:    newTasks(),
		kick:     make(chan struct{}, 1),
		leaveReq: make(chan chan struct{}),
		ready:    make(chan struct{}),

		remembered:   remembered,
		rememberKick: make(chan struct{}, 1),
	}
	// Build the table's per-id orders now (up to 0.3 s for high ids), not on
	// the first membership change when a takeover is waiting for it.
	table.Compute([]table.Member{{ID: self, Weight: 1}})
	var witnessOK func() bool
	if cfg.Gossip.Witness != "" {
		a.witness = newWitness(cfg.Gossip.Witness, log.With("component", "witness"))
		witnessOK = a.witness.OK
	}
	start := localState{Intent: intent, Weight: cfg.Weight()}
	a.members = member.New(member.Config{
		Name: cfg.Node.Name, ID: self, Weight: start.Weight, State: start.State(),
		Bind: cfg.Gossip.Bind, Advertise: cfg.Gossip.Advertise, Join: cfg.Gossip.Join, Key: key,
		RetryInterval: cfg.Gossip.RetryInterval.Duration,
		ProbeInterval: cfg.Gossip.ProbeInterval.Duration, ProbeTimeout: cfg.Gossip.ProbeTimeout.Duration,
		SwitchLead:    cfg.Gossip.SwitchLead.Duration,
		SuspicionMult: cfg.Gossip.SuspicionMult,
		Remembered:    remembered,
		Bootstrap:     cfg.Gossip.Bootstrap,
		OnAction:      a.onAction,
		OnInfo:        a.onInfo,
		WitnessOK:     witnessOK,
		// The kernel engine's owner table keeps answering this node's
		// buckets while the agent is frozen; the others must know (plan.Host).
		KernelDataPath: cfg.Filter.Engine == "kernel",
	}, log.With("component", "member"), a.onView)
	a.local = &local{cur: start, dir: cfg.StateDir, publish: a.members.SetLocal}
	a.details.tracker = delivery.New(delivery.DefaultSettings)
	a.details.lastAt = map[string]int64{}
	a.details.flows.Store(-1)
	firstVIP := ""
	if len(addrs) > 0 {
		firstVIP = addrs[0].String()
	}
	mon, err := checkers.New(cfg.CheckerSpecs(), checkers.AppScripts{
		Start: cfg.App.Start, Stop: cfg.App.Stop, Timeout: cfg.App.Timeout.Duration,
		MaxRestarts: cfg.App.MaxRestarts, Window: cfg.App.RestartWindow.Duration,
	}, a, a.events, cfg.Node.Name, firstVIP, log)
	if err != nil {
		return nil, err
	}
	a.monitor = mon
	srv, err := console.New(console.Options{
		Listen: cfg.Console.Listen, PasswordFile: cfg.Console.PasswordFile, StateDir: cfg.StateDir,
		TLSCert: cfg.Console.TLSCert, TLSKey: cfg.Console.TLSKey,
		Metrics: a.metricsHandler(), MetricsPublic: cfg.Console.MetricsPublic,
	}, a, log.With("component", "console"))
	if err != nil {
		return nil, err
	}
	a.console = srv
	return a, nil
}

// vipClaim adapts package vip to VIPClaim.
type vipClaim struct {
	claim *vip.Claim
	log   *slog.Logger
}

func (v vipClaim) Cleanup(ctx context.Context) error { return vip.Cleanup(ctx, v.log) }
func (v vipClaim) Run(ctx context.Context, ready func()) error {
	return v.claim.Run(ctx, ready)
}
func (v vipClaim) Park() { v.claim.Park() }

// onView receives every new farm view from membership (one at a time, in
// order): it hands the view to the planner and records the state changes it
// shows. It takes no lock and makes no OS call.
func (a *Agent) onView(v view.View) {
	a.view.Store(&v)
	a.kickPlanner()
	a.kickRemember()
	if !a.gossiping.Swap(true) {
		a.checkReady()
	}
	prev := a.lastNodes
	a.lastNodes = v.Nodes
	for _, e := range stateEvents(prev, v.Nodes, v.Shares) {
		a.events.Add(e)
	}
}

// stages runs the agent's components, each under a context of its own so
// they can be stopped one after another in the shutdown order, all in one
// errgroup. A component that returns while its context is still live has
// failed (an error, or an unexpected stop): that ends the agent, which
// then exits non-zero.
type stages struct {
	g    errgroup.Group
	fail context.CancelCauseFunc

	mu      sync.Mutex
	failure error // the first component failure
}

// failed records the first failure and ends the agent's context with it.
func (s *stages) failed(err error) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.mu.Unlock()
	s.fail(err)
}

// start runs fn as the named component and returns the function that stops
// it and waits for it.
func (s *stages) start(name string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.g.Go(func() error {
		defer close(done)
		err := fn(ctx)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			err = fmt.Errorf("%s: %w", name, err)
			s.failed(err)
			return err
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	return func() { cancel(); <-done }
}

// Run brings the node into the farm and keeps it there until ctx ends or a
// component fails, then takes it out again and returns; the error is the
// failure, or a failure to clean up, or nil.
//
// Order matters: the engine's rules go in first so that, from the moment the
// VIP is claimed, traffic is either decided by us or dropped (fail closed);
// on the way out the node first stops answering new connections, then leaves
// the farm (peers take over at once), stops its checkers and background
// work, releases the VIP, and only then removes the rules. Every goroutine
// and timer this starts has ended when Run returns.
func (a *Agent) Run(ctx context.Context) error {
	log := a.log
	trouble, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	s := &stages{fail: fail}

	// A crashed agent left its VIP and its rules: the rules still drop
	// (fail closed). Remove the VIP first; the engine then replaces the rules
	// in one transaction (removing the rules first would leave the VIP
	// answered by every node's stack for a moment).
	if err := a.vip.Cleanup(ctx); err != nil {
		log.Warn("Removing leftover VIP set-up failed.", "err", err)
	}
	stopEngine := s.start("data path", a.engine.Run)
	select {
	case <-a.engine.Ready():
	case <-trouble.Done():
		stopEngine()
		return a.result(s)
	}
	stopPlanner := s.start("planner", a.planLoop)
	// Claim the VIP only once the engine decides: before that, SYNs would
	// be dropped by a queue nobody reads.
	stopVIP := s.start("vip", func(ctx context.Context) error {
		return a.vip.Run(ctx, func() {
			log.Info("VIPs claimed.", "vips", len(a.cfg.VIP))
			a.vipClaimed.Store(true)
			a.checkReady()
		})
	})
	st := a.local.get()
	if st.Intent != IntentUp {
		log.Info("Node stays out of the farm: an operator stopped it (farm start NODE brings it back).", "intent", st.Intent)
		a.monitor.Pause()
	} else if a.cfg.App.Start != "" {
		r := a.monitor.StartApp(trouble)
		log.Info("Application start script ran.", "exit", r.ExitCode, "took", r.Duration.Round(time.Millisecond), "err", r.Err)
	}
	stopMembers := s.start("membership", a.members.Run)
	stopWitness := func() {}
	if a.witness != nil {
		stopWitness = s.start("witness", func(ctx context.Context) error {
			a.witness.run(ctx, a.members.Refresh)
			return nil
		})
	}
	stopMonitor := s.start("checkers", a.monitor.Run)
	stopDetail := s.start("detail", a.detailLoop)
	stopRemember := s.start("remember", a.rememberLoop)
	stopConsole := s.start("console", a.console.Run)

	<-trouble.Done()
	a.stopping.Store(true)
	if err := s.firstFailure(); err != nil {
		log.Error("A component failed; shutting down.", "err", err)
	} else {
		// A graceful stop (signal, service stop, upgrade) leaves the node
		// as a crash would: the VIP held and the guard carrying this
		// node's established flows and dropping new ones, so no connection
		// breaks however long the agent stays down. The next start replaces
		// it; `farm cleanup` removes it. A failing component removes all.
		a.park()
	}
	log.Info("Shutting down: no new connections, then leaving the farm.")
	a.leave()
	stopDetail()
	stopRemember()
	stopWitness()
	stopMembers()
	stopMonitor()
	a.tasks.stop()
	stopVIP()
	stopPlanner()
	stopEngine()
	stopConsole()
	return a.result(s)
}

// parker is a data-path part that can stay in place when the agent stops.
type parker interface{ Park() }

func (a *Agent) park() {
	e, eok := a.engine.(parker)
	v, vok := a.vip.(parker)
	if !eok || !vok {
		return // a user-space engine drops everything without its agent anyway
	}
	e.Park()
	v.Park()
	a.log.Info("Stopping gracefully: the VIP and the guard stay, so this node's established connections carry on; it takes no new ones until the agent starts again.")
}

// result waits for every component and picks Run's error: the failure that
// ended the agent, else the first error while stopping, else nil.
func (a *Agent) result(s *stages) error {
	err := s.g.Wait()
	if f := s.firstFailure(); f != nil {
		return f
	}
	return err
}

func (s *stages) firstFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}
