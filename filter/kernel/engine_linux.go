package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/flows"
	"github.com/webfarm/farm/filter/rules"
)

// nftTableFlagOwner is NFT_TABLE_F_OWNER (Linux 5.12): the table belongs
// to the netlink socket that created it and goes away with it.
const nftTableFlagOwner = 0x2

// Netlink limits. A plan is at most 4096 owned, 4096 reset and 4096 mine
// buckets per family, about 500 kB of messages in one transaction when
// dual-stack:
// more than the default socket send buffer, so the engine's socket gets a
// larger one. Elements go in messages of elemsPerMsg (a netlink attribute
// holds at most 64 kB). Every exchange has a deadline, so a kernel that
// never answers fails Apply instead of hanging it.
const (
	sendBuffer  = 4 << 20
	elemsPerMsg = 1024
	nlTimeout   = 10 * time.Second
)

// netlinkState is what Run installed: the engine's one netlink socket and
// the sets Apply fills.
type netlinkState struct {
	conn *nftables.Conn
	raw  *netlink.Conn // conn's lasting socket, for messages the library cannot build
	fams []famState
}

// famState is one family's installed tables.
type famState struct {
	f             family
	sets          ownedSets
	sw            switchObjs
	guard, ownedT *nftables.Table
}

// Run installs the rules (in the network namespace of the calling thread:
// the socket is opened there and stays there; the conntrack dumps that
// release held buckets run on Run's goroutine too, so outside the
// process's own namespace call it on a locked OS thread), serves until ctx
// ends, then
// removes them and returns nil. It returns an error if they cannot be
// installed or removed. Before installing it removes the NFQUEUE engine's
// leftover rules, which would queue new flows to nobody. If the process
// dies instead, the kernel deletes the owned tables with the socket and
// the guard tables keep dropping new flows (see the package doc) until the
// next start or `farm cleanup`. Call Run once.
func (e *Engine) Run(ctx context.Context) (err error) {
	if err := e.spec.Validate(); err != nil {
		return fmt.Errorf("kernel filter engine: %w", err)
	}
	if err := rules.RemoveNFQueue(ctx); err != nil {
		return fmt.Errorf("kernel filter engine: %w", err)
	}
	st, err := open(e.spec)
	if err != nil {
		return fmt.Errorf("install kernel filter rules: %w", err)
	}
	e.mu.Lock()
	e.nl = st
	e.hold.holdAll(time.Now()) // open filled "mine" with every bucket
	e.mu.Unlock()
	names := make([]string, len(st.fams))
	for i, f := range st.fams {
		names[i] = f.f.name
	}
	e.log.Info("Kernel filter rules installed.", "families", names, "vips", len(e.spec.VIPs), "rules", len(e.spec.Rules), "self", e.spec.Self)
	close(e.ready)

	e.releaseLoop(ctx)
	e.mu.Lock()
	e.nl = nil
	e.mu.Unlock()
	if e.parked.Load() {
		if err := st.park(); err != nil {
			return fmt.Errorf("leave the kernel guard in place: %w (run farm cleanup)", err)
		}
		e.log.Info("Kernel guard left in place: this node's established flows carry on, new ones are dropped until the agent starts again (farm cleanup removes it).")
		return nil
	}
	if err := st.close(); err != nil {
		e.log.Error("Removing kernel filter rules failed; run farm cleanup.", "err", err)
		return fmt.Errorf("remove kernel filter rules: %w (run farm cleanup)", err)
	}
	e.log.Info("Kernel filter rules removed.")
	return nil
}

// releaseLoop runs until ctx ends: every releaseEvery, while some bucket
// is held, it dumps this node's flows and releases the held buckets that
// have none (see holdings). It runs on Run's goroutine: the dump's socket
// opens in the calling thread's network namespace, the one Run installed
// in. A failed dump releases nothing: the raw chain just drops less.
func (e *Engine) releaseLoop(ctx context.Context) {
	tick := time.NewTicker(e.releaseEvery)
	defer tick.Stop()
	failing := false // logged once until a release works again
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		held := e.hold.heldCount()
		e.mu.Unlock()
		if held == 0 {
			continue
		}
		err := e.releaseHeld(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			e.log.Warn("Releasing held buckets failed; they stay open to conntrack (retried, logged again once it works).", "held", held, "err", err)
			failing = true
		case err == nil && failing:
			e.log.Info("Releasing held buckets works again.")
			failing = false
		}
	}
}

// releaseHeld dumps this node's flows once and releases, in one
// transaction, the held buckets the dump shows empty.
func (e *Engine) releaseHeld(ctx context.Context) error {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, nlTimeout)
	ts, err := flows.Tuples(dctx, filter.Mark(e.spec.Self), 0xffffffff)
	cancel()
	if err != nil {
		return err
	}
	busy := flowBuckets(ts, e.spec.VIPs, e.spec.Rules)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nl == nil {
		return nil
	}
	next := e.hold
	gone := next.release(busy, start, e.settle)
	if len(gone) == 0 {
		return nil
	}
	if err := e.nl.unmine(gone); err != nil {
		return err
	}
	e.hold = next
	e.log.Debug("Held buckets released: no flow of this node left in them.", "released", len(gone), "held", e.hold.heldCount(), "flows", len(ts))
	return nil
}

// open opens the engine's socket and installs the tables: first the owned
// tables, empty, with the owner flag and the conntrack timeout policy (our
// own messages, on the library's socket), then in one transaction the guard
// tables (replacing any left by a crashed agent) and the owned tables'
// sets, with every bucket in "mine", and chains.
func open(spec rules.Spec) (*netlinkState, error) {
	var raw *netlink.Conn
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		raw = c
		return forceSendBuffer(c, sendBuffer)
	}))
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w (needs root or CAP_NET_ADMIN)", err)
	}
	st := &netlinkState{conn: conn, raw: raw}
	for _, f := range []family{familyIPv4, familyIPv6} {
		if len(f.vips(spec)) > 0 {
			st.fams = append(st.fams, famState{f: f,
				guard:  &nftables.Table{Name: rules.GuardTable, Family: f.family},
				ownedT: &nftables.Table{Name: rules.OwnedTable, Family: f.family}})
		}
	}
	if err := st.createOwned(); err != nil {
		_ = conn.CloseLasting()
		return nil, err
	}
	if err := st.fill(spec); err != nil {
		_ = conn.CloseLasting() // takes the owned tables with it; the transaction left the rest as it was
		return nil, err
	}
	return st, nil
}

// forceSendBuffer sets the socket's send buffer past net.core.wmem_max
// (SO_SNDBUFFORCE, CAP_NET_ADMIN), as nft does for large transactions.
func forceSendBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set netlink send buffer to %d bytes: %w", n, serr)
	}
	return nil
}

// createOwned creates the owned tables, flagged as owned by this socket,
// each with its conntrack timeout policy (ctTimeoutMsg), in one
// transaction. google/nftables v0.3.0 always sends table flags 0, so the
// message is built here. A table that exists already is
// another live agent's (a dead one's would be gone): that is an error.
func (st *netlinkState) createOwned() error {
	msgs := []netlink.Message{batchMsg(unix.NFNL_MSG_BATCH_BEGIN)}
	for _, fs := range st.fams {
		attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_TABLE_NAME, Data: []byte(rules.OwnedTable + "\x00")},
			{Type: unix.NFTA_TABLE_FLAGS, Data: binary.BigEndian.AppendUint32(nil, nftTableFlagOwner)},
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
				Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			},
			Data: append([]byte{byte(fs.f.family), unix.NFNETLINK_V0, 0, 0}, attrs...),
		})
		obj, err := ctTimeoutMsg(fs.f)
		if err != nil {
			return err
		}
		msgs = append(msgs, obj)
	}
	msgs = append(msgs, batchMsg(unix.NFNL_MSG_BATCH_END))
	want := len(msgs) - 2 // one ack per message between begin and end
	if err := st.raw.SetDeadline(time.Now().Add(nlTimeout)); err != nil {
		return err
	}
	if _, err := st.raw.SendMessages(msgs); err != nil {
		return fmt.Errorf("create table %s: send: %w", rules.OwnedTable, err)
	}
	for acks := 0; acks < want; {
		replies, err := st.raw.Receive()
		if (errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EPERM)) && st.ownedExists() {
			// EPERM: the kernel refuses another socket's table before it
			// reports that it exists.
			return fmt.Errorf("create table %s: another farm agent with the kernel engine runs in this network namespace and owns it (the kernel removes it when that agent exits)", rules.OwnedTable)
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("create table %s with the owner flag and conntrack timeout policy %s: %w (needs Linux 5.12 or later with nft_ct timeout support)", rules.OwnedTable, vipTCPTimeout, err)
		}
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("create table %s: %w (needs root or CAP_NET_ADMIN)", rules.OwnedTable, err)
		}
		if err != nil {
			return fmt.Errorf("create table %s: %w", rules.OwnedTable, err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error {
				acks++
			}
		}
	}
	return nil
}

// ownedExists reports whether an OwnedTable of one of the families exists,
// asking on a socket of its own (the engine's may hold unread replies).
func (st *netlinkState) ownedExists() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	for _, fs := range st.fams {
		if _, err := c.ListTableOfFamily(rules.OwnedTable, fs.f.family); err == nil {
			return true
		}
	}
	return false
}

// batchMsg is a batch begin or end message for the nftables subsystem.
func batchMsg(t uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}, // res_id: subsystem, big endian
	}
}

// fill installs, in one transaction, every family's guard table and the
// contents of its owned table, and removes the guard table of a family
// without VIPs.
func (st *netlinkState) fill(spec rules.Spec) error {
	for _, f := range []family{familyIPv4, familyIPv6} {
		vips := f.vips(spec)
		if len(vips) == 0 {
			t := &nftables.Table{Name: rules.GuardTable, Family: f.family}
			st.conn.AddTable(t)
			st.conn.DelTable(t)
		}
	}
	for i := range st.fams {
		fs := &st.fams[i]
		in := installer{c: st.conn, spec: spec, f: fs.f, sw: &fs.sw}
		vips := fs.f.vips(spec)
		if err := in.guard(vips); err != nil {
			return err
		}
		sets, err := in.owned(vips)
		if err != nil {
			return err
		}
		fs.sets = sets
		all := make([]uint16, table.Buckets) // every bucket held until a dump shows it empty
		for b := range all {
			all[b] = uint16(b)
		}
		if err := st.addBuckets(fs, sets.mine, all); err != nil {
			return err
		}
	}
	if err := st.flush(); err != nil {
		return fmt.Errorf("install tables %s and %s: %w", rules.GuardTable, rules.OwnedTable, err)
	}
	return nil
}

// flush sends the queued messages as one transaction, with a deadline.
func (st *netlinkState) flush() error {
	if err := st.raw.SetDeadline(time.Now().Add(nlTimeout)); err != nil {
		return err
	}
	return st.conn.Flush()
}

// apply replaces the owned, reset and mine sets and the planned switch of
// every family in one transaction (flush and refill: the kernel switches
// generations at the commit, so packets see the old sets or the new ones).
func (st *netlinkState) apply(owned, reset, mine []uint16, self uint8, sw *plan.Switch) error {
	for i := range st.fams {
		fs := &st.fams[i]
		if err := st.queueSwitch(fs, self, sw); err != nil {
			return err
		}
		for _, s := range []struct {
			set     *nftables.Set
			buckets []uint16
		}{{fs.sets.owned, owned}, {fs.sets.reset, reset}, {fs.sets.mine, mine}} {
			st.conn.FlushSet(s.set)
			if err := st.addBuckets(fs, s.set, s.buckets); err != nil {
				return fmt.Errorf("apply plan: %w", err)
			}
		}
	}
	if err := st.flush(); err != nil {
		return fmt.Errorf("apply plan: %d owned, %d reset, %d mine buckets: %w", len(owned), len(reset), len(mine), err)
	}
	return nil
}

// addBuckets queues adding buckets to set s of fs, in messages of
// elemsPerMsg elements.
func (st *netlinkState) addBuckets(fs *famState, s *nftables.Set, buckets []uint16) error {
	elems := bucketElems(buckets)
	for len(elems) > 0 {
		n := min(len(elems), elemsPerMsg)
		if err := st.conn.SetAddElements(s, elems[:n]); err != nil {
			return fmt.Errorf("%s %s set %s: %w", fs.f.name, rules.OwnedTable, s.Name, err)
		}
		elems = elems[n:]
	}
	return nil
}

// unmine takes buckets out of every family's set "mine" in one
// transaction.
func (st *netlinkState) unmine(buckets []uint16) error {
	for _, fs := range st.fams {
		elems := bucketElems(buckets)
		for len(elems) > 0 {
			n := min(len(elems), elemsPerMsg)
			if err := st.conn.SetDeleteElements(fs.sets.mine, elems[:n]); err != nil {
				return fmt.Errorf("release held buckets: %s %s set %s: %w", fs.f.name, rules.OwnedTable, mineSet, err)
			}
			elems = elems[n:]
		}
	}
	if err := st.flush(); err != nil {
		return fmt.Errorf("release %d held buckets: %w", len(buckets), err)
	}
	return nil
}

// park closes the engine's socket, which takes the owned tables with it
// (owner flag), and leaves the guard tables: as after a crash, the node
// drops new flows and carries its established ones.
func (st *netlinkState) park() error {
	if err := st.conn.CloseLasting(); err != nil {
		return fmt.Errorf("close nftables netlink socket: %w", err)
	}
	return nil
}

// close deletes every table Run installed in one transaction and closes the
// socket. If the transaction fails, closing the socket still takes the
// owned tables; the guard tables stay and keep dropping (fail closed).
func (st *netlinkState) close() error {
	for _, fs := range st.fams {
		st.conn.DelTable(fs.ownedT)
		st.conn.DelTable(fs.guard)
	}
	err := st.flush()
	if cerr := st.conn.CloseLasting(); err == nil && cerr != nil {
		err = fmt.Errorf("close nftables netlink socket: %w", cerr)
	}
	return err
}

// Seen returns, per VIP in the spec's order, how many new flows the kernel
// saw to it (before the verdict), from the owned tables' named counters;
// nil when they cannot be read (the engine is not running, or netlink
// failed: logged), so the frame-delivery self-test skips this node instead
// of reading zeros as a node that stopped getting frames.
func (e *Engine) Seen() []uint64 {
	e.mu.Lock() // one exchange at a time on the engine's socket (Apply holds it too)
	defer e.mu.Unlock()
	st := e.nl
	if st == nil {
		return nil
	}
	// The socket keeps the deadline of its last exchange: without a fresh
	// one every read nlTimeout after the last Apply timed out at once, and
	// the self-test saw every node of a kernel-engine farm at 0.
	if err := st.raw.SetDeadline(time.Now().Add(nlTimeout)); err != nil {
		e.seenFailed(err)
		return nil
	}
	out := make([]uint64, len(e.spec.VIPs))
	// One counter at a time: a dump of the table's objects would include
	// the conntrack timeout policy, which the library's legacy object
	// parser refuses ("malformed stateful object"), failing the whole dump.
	for i, v := range e.spec.VIPs {
		for _, fs := range st.fams {
			if v.Unmap().Is6() != (fs.f.family == nftables.TableFamilyIPv6) {
				continue
			}
			o, err := st.conn.GetObject(&nftables.CounterObj{Table: fs.ownedT, Name: seenCounter(i)})
			c, ok := o.(*nftables.CounterObj)
			if err == nil && !ok {
				err = fmt.Errorf("counter %s: the kernel answered with %T", seenCounter(i), o)
			}
			if err != nil {
				e.seenFailed(err)
				return nil
			}
			out[i] = c.Packets
		}
	}
	if e.seenErr {
		e.seenErr = false
		e.log.Info("Reading the new-flow counters works again.")
	}
	return out
}

// seenFailed logs a failed counter read once until a read works again
// (called with e.mu held).
func (e *Engine) seenFailed(err error) {
	if !e.seenErr {
		e.seenErr = true
		e.log.Warn("Reading the new-flow counters failed; the frame-delivery self-test skips this node until it works (logged again once it does).", "err", err)
	}
}
