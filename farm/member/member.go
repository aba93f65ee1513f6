package member

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/webfarm/farm/farm/view"
)

// Config is what membership needs to know about this node.
type Config struct {
	Name      string
	ID        uint8
	Weight    uint32
	State     view.State
	Bind      string // ip:port
	Advertise string // ip:port, optional
	Join      []string
	Key       []byte // 32-byte gossip key: without it a node cannot join
	// RetryInterval is the pause between join attempts while no peer answered.
	RetryInterval time.Duration
	// ProbeInterval, ProbeTimeout and SuspicionMult tune memberlist's failure
	// detector: they bound how fast a dead node's share is taken over.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	// GossipInterval is how often memberlist sends queued broadcasts (a
	// failure, a state change) to GossipNodes random peers; 0 means
	// DefaultGossipInterval.
	GossipInterval time.Duration
	// WitnessOK reports whether the witness answers; nil means no witness.
	WitnessOK func() bool
	// OnAction applies an operator action (stop, start, drain) to this node;
	// it is called for local requests and for queries from other nodes.
	OnAction func(action string) error
	// Remembered is the farm this node knew when it last ran (member names):
	// they count towards the majority until seen, so a node restarted
	// inside a partition does not serve alone.
	Remembered []string
	// Bootstrap lets a node that remembers no farm and reaches no peer of
	// its join list serve alone after a grace period: the first node of a
	// new farm. Without it such a node waits for a peer.
	Bootstrap bool
	// JoinGrace is how long a node with a join list waits for a peer before
	// it counts on what it remembers (or bootstraps); 0 means 5 s.
	JoinGrace time.Duration
	// SwitchLead is how far ahead this node announces the switch time of
	// its own changes (join, start, stop, drain, weight) in its tags, so
	// every node hears of the change before it takes effect (farm/plan);
	// 0 announces none (every move then waits for the handoff delay).
	SwitchLead time.Duration
	// OnInfo returns what this node tells the others about itself (its
	// flows, checkers, frames seen), at most InfoLimit bytes; nil answers
	// nothing.
	OnInfo func() []byte
	// KernelDataPath tells the others that this node's data path runs in
	// its kernel (the kernel engine): it keeps answering its buckets' new
	// flows while its agent is frozen, so they must not take them over
	// while its agent's process still holds its gossip port.
	KernelDataPath bool
	// Silence is how long this node may hear nothing from any peer before
	// it suspects it is cut off and stops answering; 0 means three probe
	// intervals.
	Silence time.Duration
}

// Membership runs serf for this node and publishes a view.View on every change.
type Membership struct {
	cfg      Config
	log      *slog.Logger
	onChange func(view.View)

	joined atomic.Bool
	pubMu  sync.Mutex // serializes publish
	// poke asks the loop in Run to re-read suspicion now (see pokePoll).
	poke chan struct{}

	mu       sync.Mutex
	serf     *serf.Serf
	state    view.State
	view     view.View
	suspects map[string]bool
	// heard is the gossip transport that notes when each peer was last
	// heard; firstSeen when each live peer was first seen, so a peer that
	// just joined is not counted silent.
	heard     *heard
	firstSeen map[string]time.Time
	// fresh: whether the live peers heard within freshAfter make a
	// majority with this node (view.View.Fresh).
	fresh bool
	// downSince records when each peer was first seen down, for dynamic
	// quorum; excluded holds those dropped from the majority count.
	downSince map[string]time.Time
	excluded  map[string]bool
}

// DefaultGossipInterval is memberlist's gossip tick. memberlist wakes on
// every tick, with or without something to send: at 50 ms an idle agent
// used a sixth more CPU (1.00-1.24% of a core against 0.84-1.02% at
// 100 ms, both farms running at once, perf task-clock), for a failure that
// spreads at most one tick sooner (64 simulated nodes, kill to all agree:
// p50 586 ms at 50 ms, 668 ms at 100 ms; tests/cmd/farmsim).
const DefaultGossipInterval = 100 * time.Millisecond

// settleTime is how long a node must be down, while this node holds quorum,
// before it stops counting towards the majority.
const settleTime = 10 * time.Second

// New prepares membership; nothing starts until Run. onChange is called with
// every new view, one call at a time and in order; it must not call back into
// SetState, SetWeight or Refresh (they publish too).
func New(cfg Config, log *slog.Logger, onChange func(view.View)) *Membership {
	if cfg.State == "" {
		cfg.State = view.StateUp
	}
	return &Membership{cfg: cfg, log: log, onChange: onChange, state: cfg.State, poke: make(chan struct{}, 1)}
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, port, nil
}

// serfConfig maps our settings onto serf and memberlist. The LAN defaults
// detect a dead node in several seconds; the farm wants about one, so the
// probe interval, timeout and suspicion multiplier come from the config.
func (m *Membership) serfConfig(events chan serf.Event) (*serf.Config, error) {
	sc := serf.DefaultConfig()
	sc.NodeName = m.cfg.Name
	m.mu.Lock()
	// A joining node announces its arrival: the others keep its share
	// until the switch time, and it starts then (farm/plan).
	sc.Tags = m.tags(m.cfg.Weight, m.state, m.switchAt(time.Now()))
	m.mu.Unlock()
	sc.EventCh = events
	sc.Logger = newSerfLogger(m.log)
	sc.MemberlistConfig = memberlist.DefaultLANConfig()
	mc := sc.MemberlistConfig
	mc.Name = m.cfg.Name
	mc.Logger = sc.Logger
	host, port, err := splitHostPort(m.cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip.bind %q: %w", m.cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if m.cfg.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(m.cfg.Advertise); err != nil {
			return nil, fmt.Errorf("gossip.advertise %q: %w", m.cfg.Advertise, err)
		}
	}
	if err := memberlist.ValidateKey(m.cfg.Key); err != nil {
		return nil, fmt.Errorf("gossip key: %w (farm keygen makes one)", err)
	}
	mc.SecretKey = m.cfg.Key
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	if m.cfg.ProbeInterval > 0 {
		mc.ProbeInterval = m.cfg.ProbeInterval
	}
	if m.cfg.ProbeTimeout > 0 {
		mc.ProbeTimeout = m.cfg.ProbeTimeout
	}
	if m.cfg.SuspicionMult > 0 {
		mc.SuspicionMult = m.cfg.SuspicionMult
	}
	// Gossip often: a failure is known to the prober first and must reach
	// every other node quickly, or they compute different tables meanwhile.
	mc.GossipInterval = DefaultGossipInterval
	if m.cfg.GossipInterval > 0 {
		mc.GossipInterval = m.cfg.GossipInterval
	}
	mc.GossipNodes = 4
	// Every node must hear every state change (a weight, a drain, a
	// start): one that misses one keeps answering buckets the others have
	// moved, and both answer their new connections. memberlist sends a
	// broadcast RetransmitMult x ceil(log10(n+1)) times in all: with its
	// default 4, a farm of 4 sends it to each peer about once, so one
	// lost datagram left a node on the old table until the next push-pull
	// (a 10-minute chaos soak: a weight change missed by one node for 6.5 s,
	// 19 SYNs answered twice). Twice as many sends make a miss take two
	// losses; a push-pull every 10 s instead of 30 bounds what a miss costs.
	mc.RetransmitMult = 8
	mc.PushPullInterval = 10 * time.Second
	// memberlist compresses every datagram with LZW by default, allocating
	// a 64 KB encoder per packet, for pings and acks of a few dozen bytes
	// that do not shrink: without it an idle 3-node farm's agents use about
	// 0.2% of a core less each (tests/footprint.sh). Receivers accept both
	// forms, so nodes with and without compression interoperate.
	mc.EnableCompression = false
	// A node that comes back after being declared dead must not stay out for
	// the default 30 s.
	mc.DeadNodeReclaimTime = time.Second
	// Serf's network coordinates (Vivaldi RTT estimates) ride on every
	// probe's ack and are updated on every probe; nothing here uses them.
	sc.DisableCoordinates = true
	sc.ReapInterval = 5 * time.Second
	// A member declared failed (a cut link, a partition) is retried this
	// often: after the heal the farm agrees again within about a second
	// instead of serf's default 30 s (measured by the chaos soak).
	sc.ReconnectInterval = time.Second
	sc.ReconnectTimeout = time.Hour
	sc.TombstoneTimeout = time.Hour
	sc.LeavePropagateDelay = 500 * time.Millisecond
	sc.BroadcastTimeout = 2 * time.Second
	return sc, nil
}

// Run starts serf, joins the peers (retrying until one answers), publishes
// views until ctx ends, then leaves the farm gracefully and shuts serf down.
func (m *Membership) Run(ctx context.Context) error {
	events := make(chan serf.Event, 256)
	sc, err := m.serfConfig(events)
	if err != nil {
		return err
	}
	mc := sc.MemberlistConfig
	h, err := newHeard(mc.BindAddr, mc.BindPort, sc.Logger)
	if err != nil {
		return fmt.Errorf("start gossip on %s: %w", m.cfg.Bind, err)
	}
	mc.Transport = h
	s, err := serf.Create(sc)
	if err != nil {
		_ = h.Shutdown()
		return fmt.Errorf("start gossip on %s: %w", m.cfg.Bind, err)
	}
	m.mu.Lock()
	m.serf = s
	m.heard = h
	m.mu.Unlock()
	m.log.Info("Gossip started.", "bind", m.cfg.Bind, "name", m.cfg.Name, "id", m.cfg.ID)
	m.publish()

	joinDone := make(chan struct{})
	go func() {
		defer close(joinDone)
		m.joinLoop(ctx, s)
	}()

	// Suspicion is not an event in serf: silence is (see heard). The loop
	// re-reads who was heard when a verdict can next change, so that a node
	// cut off from the majority stops serving as soon as the silence is
	// long enough, before the majority declares it dead and takes over (no
	// bucket is served twice meanwhile). Waking only then (about every
	// 250 ms in a steady farm), not on a fixed 50 ms tick, saved about a
	// tenth of an idle agent's CPU (perf task-clock, side by side) and
	// notices the silence on time instead of up to a tick late.
	poll := time.NewTimer(0)
	defer poll.Stop()
	// Queries are answered on goroutines of their own (an action may take a
	// moment) that Run waits for before it returns.
	var queries sync.WaitGroup
	defer queries.Wait()
	for {
		select {
		case <-poll.C:
			now := time.Now()
			changed, next := m.pollSuspects(s, now)
			if m.settle(s, now) {
				changed = true
			}
			if changed {
				m.publish()
			}
			poll.Reset(time.Until(next))
		case <-m.poke:
			poll.Reset(0)
		case <-ctx.Done():
			<-joinDone
			m.leave(s)
			return nil
		case <-s.ShutdownCh():
			<-joinDone
			return errors.New("gossip shut down unexpectedly")
		case e := <-events:
			switch ev := e.(type) {
			case serf.MemberEvent:
				m.publish()
				// New or lost peers change whom to watch and the quorum.
				poll.Reset(0)
			case *serf.Query:
				queries.Go(func() { m.answerQuery(ev) })
			}
		}
	}
}

// pokePoll makes the membership loop re-read suspicion now (the witness's
// answer or the known members changed the quorum rule's inputs).
func (m *Membership) pokePoll() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// leave tells the others we are going (so they take over at once instead
// of waiting for the failure detector) and stops serf.
func (m *Membership) leave(s *serf.Serf) {
	done := make(chan error, 1)
	go func() { done <- s.Leave() }()
	left := false
	select {
	case err := <-done:
		left = true
		if err != nil {
			m.log.Warn("Leaving the farm failed.", "err", err)
		}
	case <-time.After(5 * time.Second):
		m.log.Warn("Leaving the farm timed out; shutting down anyway.")
	}
	if err := s.Shutdown(); err != nil {
		m.log.Warn("Gossip shutdown failed.", "err", err)
	}
	if !left {
		// A shut-down serf ends a Leave within its broadcast timeout; wait
		// for it so no goroutine of ours outlives Run.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			m.log.Warn("Leave still running after shutdown.")
		}
	}
	m.log.Info("Left the farm.")
}

// joinGrace is how long a node with a join list waits for a peer before it
// counts on the farm it remembers (the majority rule decides whether it
// serves) or, with Config.Bootstrap, serves as the first node of a new farm.
const joinGrace = 5 * time.Second

func (m *Membership) joinGrace() time.Duration {
	if m.cfg.JoinGrace > 0 {
		return m.cfg.JoinGrace
	}
	return joinGrace
}

func (m *Membership) joinLoop(ctx context.Context, s *serf.Serf) {
	if len(m.cfg.Join) == 0 {
		m.setJoined()
		return
	}
	grace := time.AfterFunc(m.joinGrace(), func() {
		if m.joined.Load() {
			return
		}
		switch {
		case len(m.cfg.Remembered) > 0:
			m.log.Warn("No peer answered yet: counting the farm this node knew for the majority.", "waited", m.joinGrace(), "remembered", len(m.cfg.Remembered))
		case m.cfg.Bootstrap:
			m.log.Warn("No peer answered yet: serving as the first node of a new farm (gossip.bootstrap).", "waited", m.joinGrace())
		default:
			m.log.Warn("No peer answered and this node knows no farm: it serves nobody until a peer answers (set gossip.bootstrap = true on the first node of a new farm).", "waited", m.joinGrace())
			return
		}
		m.setJoined()
	})
	defer grace.Stop()
	retry := m.cfg.RetryInterval
	if retry <= 0 {
		retry = 2 * time.Second
	}
	for attempt := 1; ; attempt++ {
		n, err := s.Join(m.cfg.Join, true)
		if n > 0 {
			m.log.Info("Joined the farm.", "contacted", n, "attempt", attempt)
			// Let the push-pull exchange settle so the first view that
			// serves already lists every member.
			time.Sleep(100 * time.Millisecond)
			m.setJoined()
			return
		}
		m.log.Warn("No peer answered the join; retrying.", "peers", m.cfg.Join, "attempt", attempt, "err", err, "retry_in", retry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

// SetLocal changes this node's advertised state and weight; every node
// recomputes its table. Callers serialize their calls (the agent holds its
// node-state lock across the computation and this call), so the tags always
// carry the latest state. The tags announce the change's switch time,
// SwitchLead from now, at which every node moves the buckets it moves
// (farm/plan), except for an application failure. Established flows stay
// where they are.
func (m *Membership) SetLocal(st view.State, weight uint32) error {
	m.mu.Lock()
	s := m.serf
	m.state, m.cfg.Weight = st, weight
	m.mu.Unlock()
	if s == nil {
		return nil // Run puts them in the first tags
	}
	at := m.switchAt(time.Now())
	if st == view.StateFailed {
		// Not a planned move: a node whose application failed must take
		// no new connection meanwhile (they would fail, not just wait),
		// so it lets go at once and the others take over after the
		// handoff delay.
		at = time.Time{}
	}
	if err := s.SetTags(m.tags(weight, st, at)); err != nil {
		return fmt.Errorf("publish state %s, weight %d: %w", st, weight, err)
	}
	m.publish()
	return nil
}

// switchAt is the switch time this node announces for a change it makes
// now: SwitchLead ahead, long enough for gossip to reach every node first.
// Zero (none) without a lead.
func (m *Membership) switchAt(now time.Time) time.Time {
	if m.cfg.SwitchLead <= 0 {
		return time.Time{}
	}
	return now.Add(m.cfg.SwitchLead)
}

// View returns the latest view.
func (m *Membership) View() view.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// publish recomputes the view from serf's member list (not from the event,
// so a burst of events cannot leave us on a stale intermediate state).
func (m *Membership) publish() {
	// Views are published from several goroutines (serf events, state
	// changes, the witness, the join loop); one at a time, so onChange never
	// sees an older view after a newer one.
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	var nodes []view.Node
	m.mu.Lock()
	suspects, excluded := m.suspects, m.excluded
	m.mu.Unlock()
	var names []string
	for _, mem := range s.Members() {
		alive := mem.Status == serf.StatusAlive
		left := mem.Status == serf.StatusLeft || mem.Status == serf.StatusLeaving
		n := nodeFromTags(mem.Name, net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))), alive, left, mem.Tags)
		n.Suspect = suspects[mem.Name]
		n.Excluded = excluded[mem.Name]
		nodes = append(nodes, n)
		names = append(names, mem.Name)
	}
	nodes = append(nodes, m.phantoms(present(names), excluded)...)
	witness := true
	if m.cfg.WitnessOK != nil {
		witness = m.cfg.WitnessOK()
	}
	v := view.Compute(nodes, witness)
	if !m.joined.Load() && v.Healthy > 1 {
		// A peer joined us (push-pull gave us its whole member list): we
		// know the farm even though our own join attempt failed.
		m.joined.Store(true)
	}
	v.Joined = m.joined.Load()
	m.mu.Lock()
	v.Fresh = m.fresh
	old := m.view
	m.view = v
	m.mu.Unlock()
	if old.Table != nil && *old.Table == *v.Table && sameNodes(old.Nodes, v.Nodes) && old.Quorum == v.Quorum && old.Joined == v.Joined && old.Fresh == v.Fresh {
		return
	}
	if old.Quorum != v.Quorum || old.Table == nil {
		if v.Quorum {
			m.log.Info("This node has quorum: serving its share.", "known", v.Known, "healthy", v.Healthy)
		} else {
			m.log.Warn("This node lost quorum: it serves nobody until it sees a majority again.", "known", v.Known, "healthy", v.Healthy)
		}
	}
	alive := 0
	for _, n := range v.Nodes {
		if n.Alive {
			alive++
		}
	}
	m.log.Info("Farm view changed.", "members", len(v.Nodes), "alive", alive,
		"my_buckets", v.Shares[m.cfg.ID], "my_share", fmt.Sprintf("%.1f%%", 100*float64(v.Shares[m.cfg.ID])/4096))
	if m.onChange != nil {
		m.onChange(v)
	}
}

func (m *Membership) setJoined() {
	if !m.joined.Swap(true) {
		m.Refresh()
	}
}

// Refresh recomputes the view, e.g. when the witness's answer changed.
func (m *Membership) Refresh() {
	m.pokePoll()
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	if s != nil {
		m.publish()
	}
}

// settle updates the dynamic-quorum exclusions: a peer down for settleTime
// while this node had quorum is excluded; a peer seen alive again is counted
// again. The minority side of a partition never had quorum after the split,
// so it never excludes the majority and never grants itself quorum.
// It reports whether the exclusions changed.
func (m *Membership) settle(s *serf.Serf, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.downSince == nil {
		m.downSince, m.excluded = map[string]time.Time{}, map[string]bool{}
	}
	changed := false
	next := map[string]bool{}
	for k, v := range m.excluded {
		next[k] = v
	}
	var names []string
	for _, mem := range s.Members() {
		names = append(names, mem.Name)
		switch mem.Status {
		case serf.StatusAlive:
			delete(m.downSince, mem.Name)
			if next[mem.Name] {
				delete(next, mem.Name)
				changed = true
			}
		case serf.StatusFailed:
			since, ok := m.downSince[mem.Name]
			if !ok {
				m.downSince[mem.Name] = now
				continue
			}
			if !next[mem.Name] && m.view.Quorum && now.Sub(since) >= settleTime {
				next[mem.Name] = true
				changed = true
				m.log.Info("Peer down long enough: it no longer counts towards the majority.", "peer", mem.Name, "down_for", now.Sub(since).Round(time.Second))
			}
		}
	}
	if m.settleRemembered(present(names), next, now) {
		changed = true
	}
	if changed {
		m.excluded = next // publish reads the map without the lock: replace, never mutate
	}
	return changed
}

// pollSuspects updates which peers this node suspects; it reports whether
// the set changed and when to look again. A node that has heard no gossip
// packet from any live peer for the silence time suspects them all (see
// heard), so it loses quorum and stops answering before the majority takes
// its buckets over.
func (m *Membership) pollSuspects(s *serf.Serf, now time.Time) (bool, time.Time) {
	var names, addrs []string
	for _, mem := range s.Members() {
		if mem.Name == m.cfg.Name || mem.Status != serf.StatusAlive {
			continue
		}
		names = append(names, mem.Name)
		addrs = append(addrs, net.JoinHostPort(mem.Addr.String(), strconv.Itoa(int(mem.Port))))
	}
	last := m.heard.take(addrs)
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]time.Time, len(names))
	for i, n := range names {
		first, ok := m.firstSeen[n]
		if !ok {
			first = now
		}
		seen[n] = first
		if first.After(last[i]) {
			last[i] = first
		}
	}
	m.firstSeen = seen
	cut := silence(last, now, m.silenceAfter())
	heardN := 0
	for _, t := range last {
		if now.Sub(t) <= freshAfter {
			heardN++
		}
	}
	witness := true
	if m.cfg.WitnessOK != nil {
		witness = m.cfg.WitnessOK()
	}
	fresh := view.HasQuorum(m.view.Known, heardN+1, witness)
	freshChanged := fresh != m.fresh
	m.fresh = fresh
	cur := map[string]bool{}
	if cut {
		for _, n := range names {
			cur[n] = true
		}
	}
	if cut != (len(m.suspects) > 0) {
		if cut {
			m.log.Warn("Heard no gossip from any peer: this node suspects it is cut off and stops answering until it hears them again.", "silence", m.silenceAfter(), "peers", len(names))
		} else {
			m.log.Info("Hearing peers again.")
		}
	}
	changed := len(cur) != len(m.suspects) || freshChanged
	for k := range cur {
		if !m.suspects[k] {
			changed = true
		}
	}
	m.suspects = cur
	return changed, nextPoll(last, now, cut, fresh, m.silenceAfter())
}

// Bounds of the membership loop's wait between two reads of who was heard.
// pollWaiting is the pace while a verdict waits for a packet rather than
// a deadline (this node is cut off, or short of a fresh majority); pollMax
// bounds every wait, which is the lag of the dynamic-quorum rule (settle,
// 10 s) and of anything else no event announces.
const (
	pollWaiting = 50 * time.Millisecond
	pollMax     = 500 * time.Millisecond
)

// nextPoll is the pure rule for when the suspicion verdicts can next change
// if no packet arrives: the silence verdict when the last peer heard falls
// silent, the freshness count when the first of the fresh peers grows
// stale. A packet only ever moves those instants later, so sleeping until
// the earliest one misses nothing; a verdict that only a packet can turn
// (cut off, not fresh) is re-read every pollWaiting.
func nextPoll(last []time.Time, now time.Time, cut, fresh bool, silence time.Duration) time.Time {
	if len(last) == 0 {
		return now.Add(pollMax)
	}
	if cut || !fresh {
		return now.Add(pollWaiting)
	}
	var latest time.Time
	for _, t := range last {
		if t.After(latest) {
			latest = t
		}
	}
	next := latest.Add(silence)
	for _, t := range last {
		if now.Sub(t) <= freshAfter && t.Add(freshAfter).Before(next) {
			next = t.Add(freshAfter)
		}
	}
	// Just past the instant: the verdicts compare with <=.
	next = next.Add(time.Millisecond)
	if lim := now.Add(pollMax); next.After(lim) {
		return lim
	}
	if next.Before(now) {
		return now
	}
	return next
}

// freshAfter is how recent a peer's last packet must be to count towards
// View.Fresh: half a second, longer than the usual gap between two packets
// of one peer in a small farm (its probe of this node and this node's
// probe of it, each about every (n-1) probe intervals), shorter than the
// other side of a split needs to take a cut node's buckets over (failure
// detection, then the host probe: 0.6-0.7 s measured). A peer heard less
// often only delays takeovers, never stops this node serving its own share.
const freshAfter = 500 * time.Millisecond

// silenceAfter is how long a silence from every peer must last before this
// node counts itself cut off: three probe intervals. A node receives the
// ack of its own probe every interval and the others' probes about as
// often; one of its probes stalled on a dead peer (up to several intervals
// while memberlist's health score grows) still leaves the others' probes.
func (m *Membership) silenceAfter() time.Duration {
	if m.cfg.Silence > 0 {
		return m.cfg.Silence
	}
	p := m.cfg.ProbeInterval
	if p <= 0 {
		p = memberlist.DefaultLANConfig().ProbeInterval
	}
	return 3 * p
}

func sameNodes(a, b []view.Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// HealthScore returns memberlist's health score of this node (0 is healthy);
// false while gossip is not running.
func (m *Membership) HealthScore() (int, bool) {
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	if s == nil {
		return 0, false
	}
	return s.Memberlist().GetHealthScore(), true
}
