//go:build windows && amd64

package windivert

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/vip"
)

// Queue settings of the handle: room for a burst of the whole farm's
// traffic while the loop is busy, and a queue time after which a packet is
// not worth deciding (TCP retransmits it). A packet that waits longer, or
// finds the queue full, is dropped by the driver: fail closed.
const (
	queueLength = 8192
	queueSize   = 16 << 20
	queueTimeMS = 1000
)

// Loop buffers: a full batch of MTU-sized packets, and at least one packet
// of the largest size WinDivert delivers.
const (
	batchPackets = BatchMax
	recvBufLen   = max(batchPackets*1600, MTUMax)
)

// Timing of the packet loop's housekeeping and of the shutdown.
const (
	expireEvery   = 250 * time.Millisecond
	expirePerTick = 1024
	drainTimeout  = 5 * time.Second
	commandWait   = 30 * time.Second
)

// Run installs the engine on this host, decides every diverted packet until
// ctx ends, then removes what it installed and returns nil. In order:
//
//  1. Load WinDivert.dll and read the crash guard's record (GuardFile).
//  2. Adopt the WinDivert handle a crashed predecessor left in its holder
//     when the filter is the same (no gap: packets it queued meanwhile are
//     decided now); otherwise open a new handle at the other priority,
//     then drain and close the old one.
//  3. Start a holder for a new handle and write the record, so a crash
//     from here on leaves a filter that drops.
//  4. Install or remove the firewall guard (Spec.FirewallGuard).
//  5. Seed the flow table from the local TCP table (connections this node
//     accepted before a crash), join the multicast groups, and add the VIP
//     addresses to the VIP adapter (active store only). Ready.
//  6. On the way out: remove the VIP addresses first (from then on nothing
//     for the VIPs is local), shut the handle's receive side and drain its
//     queue (a handle closed with packets queued reinjects them), close it,
//     end the holder, remove the firewall guard and the record.
//
// If the VIP addresses cannot be removed, Run leaves the holder with the
// filter (the node keeps dropping) and returns an error naming
// scripts/iis/guard.ps1 release. Call Run once.
func (e *Engine) Run(ctx context.Context) (err error) {
	if err := e.spec.Validate(); err != nil {
		return fmt.Errorf("windivert engine: %w", err)
	}
	flt, _ := Filter(e.spec)
	d, err := loadDLL()
	if err != nil {
		return fmt.Errorf("windivert engine: %w", err)
	}
	if err := d.CheckFilter(flt); err != nil {
		return fmt.Errorf("windivert engine: %w", err)
	}
	r := &runner{e: e, d: d, filter: flt, adapter: e.spec.vipAdapter()}
	if err := r.install(ctx); err != nil {
		if rerr := r.uninstall(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("windivert engine: %w", err)
	}
	close(e.ready)
	e.log.Info("Filter engine listening.", "filter", flt, "priority", r.priority, "adopted", r.adopted,
		"seeded_flows", r.seeded, "firewall_guard", e.spec.FirewallGuard, "self", e.spec.Self)

	loopErr := make(chan error, 1)
	go func() { loopErr <- r.loop() }()
	select {
	case <-ctx.Done():
	case err = <-loopErr:
		loopErr <- err // uninstall waits for it
		e.log.Error("Filter engine failed; new flows are dropped until it restarts.", "error", err)
	}
	r.loopDone = loopErr
	if uerr := r.uninstall(context.WithoutCancel(ctx)); uerr != nil {
		e.log.Error("Removing the filter engine failed; the node keeps dropping the VIPs' traffic. Run scripts/iis/guard.ps1 release.", "error", uerr)
		err = errors.Join(err, fmt.Errorf("remove the filter engine: %w (run scripts/iis/guard.ps1 release)", uerr))
	} else {
		st := e.Stats()
		e.log.Info("Filter engine stopped.", "accepted", st.Accepted, "dropped", st.Dropped, "reset", st.Reset, "errors", st.Errors)
	}
	return err
}

// runner is one Run's state.
type runner struct {
	e       *Engine
	d       *dll
	filter  string
	adapter string

	h        windows.Handle // this engine's WinDivert handle (0: none)
	priority int16
	adopted  bool
	hold     *holder
	record   *guardRecord // the record this run wrote; nil before
	firewall bool         // the firewall guard rules are installed
	groups   []net.PacketConn
	seeded   int
	// reinjectIf is the interface index accepted packets are reinjected
	// on (the VIP adapter, for the firewall guard); 0 keeps their own.
	reinjectIf uint32
	loopDone   chan error
	// stopping tells the loop not to receive again (see stopLoop).
	stopping atomic.Bool
}

// install does steps 1 to 5 of Run.
func (r *runner) install(ctx context.Context) error {
	e := r.e
	base := e.spec.priority()
	rec, err := readGuard(e.spec.StateDir)
	if err != nil {
		return err
	}
	var old *holder
	var oldH windows.Handle
	if rec != nil {
		old, oldH, err = findHolder(rec)
		if err != nil {
			e.log.Warn("Could not take over the previous engine's WinDivert handle; ending its crash guard.", "error", err)
		}
		// VIPs the previous run held that this one does not (the config
		// changed): remove them while the old filter still guards them.
		for _, s := range rec.VIPs {
			a, perr := netip.ParseAddr(s)
			if perr != nil || (rec.Adapter == r.adapter && isVIP(a, vipAddrs(e.spec))) {
				continue
			}
			if err := removeVIP(ctx, rec.Adapter, a); err != nil {
				if oldH != 0 {
					r.d.Close(oldH)
				}
				old.release() // it keeps dropping for the VIP left behind
				return fmt.Errorf("remove the previous run's VIP: %w", err)
			}
		}
	}
	r.priority = base
	if oldH != 0 && rec.Filter == r.filter && (rec.Priority == base || rec.Priority == base+1) {
		r.h, r.priority, r.adopted, r.hold = oldH, rec.Priority, true, old
		e.log.Info("Adopted the WinDivert handle of the previous engine.", "holder_pid", old.pid)
	} else {
		if rec != nil {
			r.priority = otherPriority(base, rec.Priority)
		}
		r.h, err = r.d.Open(r.filter, LayerNetwork, r.priority, 0)
		if err != nil {
			r.h = 0
			if oldH != 0 {
				r.d.Close(oldH) // the old holder keeps dropping
				old.release()
			}
			return fmt.Errorf("WinDivertOpen: %w", openError(err))
		}
		if oldH != 0 {
			r.retire(oldH)
		}
		if err := old.stop(); err != nil {
			e.log.Warn("Could not end the previous crash guard process.", "error", err)
		}
		if r.hold, err = startHolder(r.h); err != nil {
			return err
		}
	}
	if maj, err := r.d.GetParam(r.h, ParamVersionMajor); err == nil {
		minor, _ := r.d.GetParam(r.h, ParamVersionMinor)
		e.log.Info("WinDivert driver loaded.", "version", fmt.Sprintf("%d.%d", maj, minor), "dll", r.d.path)
		if maj != 2 {
			return fmt.Errorf("WinDivert driver %d.%d is loaded; this engine needs 2.x (stop the other programs using WinDivert, sc stop WinDivert)", maj, minor)
		}
	}
	for _, p := range []struct {
		param int
		value uint64
	}{{ParamQueueLength, queueLength}, {ParamQueueSize, queueSize}, {ParamQueueTime, queueTimeMS}} {
		if err := r.d.SetParam(r.h, p.param, p.value); err != nil {
			return fmt.Errorf("WinDivertSetParam(%d, %d): %w", p.param, p.value, err)
		}
	}
	var vips []string
	for _, a := range vipAddrs(e.spec) {
		vips = append(vips, a.String())
	}
	r.record = &guardRecord{
		PID: r.hold.pid, Created: r.hold.created, Handle: uint64(r.hold.remote), Priority: r.priority,
		Filter: r.filter, Adapter: r.adapter, VIPs: vips,
		Firewall: e.spec.FirewallGuard || (rec != nil && rec.Firewall),
	}
	if err := writeGuard(e.spec.StateDir, r.record); err != nil {
		return fmt.Errorf("write the crash guard record: %w", err)
	}

	if r.record.Firewall { // install, or remove the rules a previous run left
		if err := powershell(ctx, firewallScript(e.spec, e.spec.FirewallGuard)); err != nil {
			return fmt.Errorf("firewall guard: %w", err)
		}
		r.firewall = e.spec.FirewallGuard
		if !r.firewall {
			r.record.Firewall = false
			if err := writeGuard(e.spec.StateDir, r.record); err != nil {
				return err
			}
		}
	}
	if e.spec.FirewallGuard {
		ifi, err := net.InterfaceByName(r.adapter)
		if err != nil {
			return fmt.Errorf("vip adapter %q: %w (scripts/iis/network.ps1 sets it up)", r.adapter, err)
		}
		r.reinjectIf = uint32(ifi.Index)
	}

	if err := r.seed(); err != nil {
		e.log.Warn("Could not read the TCP table; connections from before a crash will stall.", "error", err)
	}
	for _, v := range e.spec.VIPs {
		if v.Mode != vip.ModeMulticast && v.Mode != vip.ModeIGMP {
			continue
		}
		c, err := joinGroup(v.Interface, GroupOf(v.Addr))
		if err != nil {
			return fmt.Errorf("vip %s: join %s on %q: %w", v.Addr, GroupOf(v.Addr), v.Interface, err)
		}
		r.groups = append(r.groups, c)
		e.log.Info("Joined the VIP's multicast group.", "vip", v.Addr, "group", GroupOf(v.Addr), "mac", GroupMAC(v.Addr), "interface", v.Interface)
	}
	for _, a := range vipAddrs(e.spec) {
		if err := addVIP(ctx, r.adapter, a); err != nil {
			return err
		}
	}
	e.log.Info("VIP addresses added.", "adapter", r.adapter, "vips", vips)
	return nil
}

// retire drains and closes the handle of a previous engine that this one
// does not adopt: its receive side is shut (its filter lets packets by,
// and this engine's handle sees them), what it queued is read and
// dropped, so closing it reinjects nothing.
func (r *runner) retire(h windows.Handle) {
	if err := r.d.Shutdown(h, ShutdownRecv); err == nil {
		buf := make([]byte, recvBufLen)
		addrs := make([]Address, batchPackets)
		st := new(ioState)
		deadline := time.Now().Add(drainTimeout)
		for time.Now().Before(deadline) {
			if _, _, err := r.d.RecvEx(h, buf, addrs, st); err != nil {
				break // ERROR_NO_DATA: drained
			}
		}
	}
	r.d.Close(h)
}

// uninstall does step 6 of Run (and undoes a partial install). It removes
// every VIP of the spec the adapter holds, whoever added it (a crashed
// predecessor's are still there when install fails early).
func (r *runner) uninstall(ctx context.Context) error {
	e := r.e
	var errs []error
	for _, a := range vipAddrs(e.spec) {
		if err := removeVIP(ctx, r.adapter, a); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range r.groups {
		c.Close()
	}
	r.groups = nil
	if len(errs) > 0 {
		// A VIP is still local: opening the filter now would let the
		// stack answer for it. Leave the holder with the filter.
		r.stopLoop(false)
		if r.h != 0 {
			r.d.Close(r.h)
		}
		r.hold.release()
		return errors.Join(errs...)
	}
	r.stopLoop(true)
	if r.h != 0 {
		if err := r.d.Close(r.h); err != nil {
			errs = append(errs, fmt.Errorf("WinDivertClose: %w", err))
		}
		r.h = 0
	}
	if err := r.hold.stop(); err != nil {
		errs = append(errs, err)
	}
	if r.firewall || (r.record != nil && r.record.Firewall) {
		if err := powershell(ctx, firewallScript(e.spec, false)); err != nil {
			errs = append(errs, fmt.Errorf("remove the firewall guard: %w", err))
		}
	}
	if len(errs) == 0 && r.record != nil { // a record this run did not write names a holder still running
		if err := removeGuard(e.spec.StateDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopLoop ends the packet loop, if it runs. With drain, the handle's
// receive side is shut and the loop decides what is still queued until
// WinDivertRecvEx reports ERROR_NO_DATA; otherwise (or if draining takes
// too long) the pending receive is cancelled and the queue stays for the
// holder.
func (r *runner) stopLoop(drain bool) {
	if r.h == 0 {
		return
	}
	if drain {
		if err := r.d.Shutdown(r.h, ShutdownRecv); err != nil {
			r.e.log.Warn("WinDivertShutdown failed.", "error", err)
			drain = false
		}
	}
	if r.loopDone == nil {
		return // install failed before the loop started
	}
	if drain {
		select {
		case <-r.loopDone:
			return
		case <-time.After(drainTimeout):
		}
	}
	// Cancel the pending receive. The loop may be between two receives
	// and start another after a cancel, so cancel until it is gone.
	r.stopping.Store(true)
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		windows.CancelIoEx(r.h, nil)
		select {
		case <-r.loopDone:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.e.log.Warn("The packet loop did not stop.")
}

// loop receives, decides and reinjects batches until the handle is shut
// down and drained (nil) or a receive fails.
func (r *runner) loop() error {
	e := r.e
	buf := make([]byte, recvBufLen)
	addrs := make([]Address, batchPackets)
	st := new(ioState)
	start := time.Now()
	var now int64
	reinjectIf := r.reinjectIf
	decide := func(pkt []byte, a *Address) bool {
		if e.core.Decide(pkt, now) == filter.Drop {
			return false
		}
		if reinjectIf != 0 {
			a.SetInterface(reinjectIf, 0)
		}
		return true
	}
	lastExpire := int64(0)
	for !r.stopping.Load() {
		n, count, err := r.d.RecvEx(r.h, buf, addrs, st)
		if err != nil {
			switch {
			case errors.Is(err, windows.ERROR_NO_DATA), errors.Is(err, windows.ERROR_OPERATION_ABORTED):
				e.publish()
				return nil
			case errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER):
				// A packet larger than the buffer: it is lost (dropped).
				e.errors.Add(1)
				continue
			}
			e.errors.Add(1)
			return fmt.Errorf("WinDivertRecvEx: %w", err)
		}
		now = int64(time.Since(start))
		e.batches.Add(1)
		sendLen, sendN, berr := decideBatch(buf, n, addrs, count, decide)
		if berr != nil {
			e.errors.Add(1)
			r.warn("A received batch did not split into packets; its rest was dropped.", berr)
		}
		if sendN > 0 {
			if _, err := r.d.SendEx(r.h, buf[:sendLen], addrs[:sendN], st); err != nil {
				e.errors.Add(1)
				r.warn("WinDivertSendEx could not reinject a packet.", err)
			}
		}
		if now-lastExpire >= int64(expireEvery) {
			e.core.Flows().Expire(now, expirePerTick)
			lastExpire = now
		}
		e.publish()
	}
	e.publish()
	return nil
}

// warn logs a per-batch problem at most once a second.
func (r *runner) warn(msg string, err error) {
	if r.e.logDue(time.Now().UnixNano()) {
		r.e.log.Warn(msg, "error", err, "errors", r.e.errors.Load())
	}
}

// seed fills the flow table from the local TCP table.
func (r *runner) seed() error {
	e := r.e
	ports := protoPorts(e.spec, filter.ProtoTCP)
	var errs []error
	for _, af := range []uint32{windows.AF_INET, windows.AF_INET6} {
		b, err := tcpTable(af)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = parseTCPTable(b, af == windows.AF_INET6, e.vips, ports, func(s TCPSeed) {
			e.core.Seed(s.Key, s.Class, 0)
			r.seeded++
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	e.publish()
	return errors.Join(errs...)
}

var procGetExtendedTcpTable = windows.NewLazySystemDLL("iphlpapi.dll").NewProc("GetExtendedTcpTable")

// tcpTableOwnerPIDConnections is TCP_TABLE_OWNER_PID_CONNECTIONS.
const tcpTableOwnerPIDConnections = 4

// tcpTable returns GetExtendedTcpTable's connections of family af.
func tcpTable(af uint32) ([]byte, error) {
	size := new(uint32)
	buf := make([]byte, 64<<10)
	for range 8 {
		*size = uint32(len(buf))
		r, _, _ := procGetExtendedTcpTable.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(size)), 0,
			uintptr(af), tcpTableOwnerPIDConnections, 0)
		switch windows.Errno(r) {
		case 0:
			return buf[:*size], nil
		case windows.ERROR_INSUFFICIENT_BUFFER:
			buf = make([]byte, *size+16<<10) // connections come and go meanwhile
			continue
		default:
			return nil, fmt.Errorf("GetExtendedTcpTable: %w", windows.Errno(r))
		}
	}
	return nil, errors.New("GetExtendedTcpTable: the table kept growing")
}

// joinGroup joins group on the named interface and returns the socket that
// holds the membership (closing it leaves the group).
func joinGroup(ifname string, group netip.Addr) (net.PacketConn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if group.Is6() {
		network = "udp6"
	}
	return net.ListenMulticastUDP(network, ifi, &net.UDPAddr{IP: group.AsSlice()})
}

// hasAddr reports whether adapter holds a.
func hasAddr(adapter string, a netip.Addr) bool {
	ifi, err := net.InterfaceByName(adapter)
	if err != nil {
		return false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if y, ok := netip.AddrFromSlice(n.IP); ok && y.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// addVIP adds a to adapter unless it is there (a crashed predecessor's).
func addVIP(ctx context.Context, adapter string, a netip.Addr) error {
	if hasAddr(adapter, a) {
		return nil
	}
	if err := netsh(ctx, addressCommand(true, adapter, a)); err != nil && !hasAddr(adapter, a) {
		return fmt.Errorf("vip %s: add it to %q: %w (scripts/iis/network.ps1 sets the adapter up)", a, adapter, err)
	}
	return nil
}

// removeVIP removes a from adapter if it is there.
func removeVIP(ctx context.Context, adapter string, a netip.Addr) error {
	if !hasAddr(adapter, a) {
		return nil
	}
	if err := netsh(ctx, addressCommand(false, adapter, a)); err != nil && hasAddr(adapter, a) {
		return fmt.Errorf("vip %s: remove it from %q: %w", a, adapter, err)
	}
	return nil
}

// netsh runs a netsh command line as written (the adapter name is quoted
// in it, so it is passed verbatim rather than re-escaped).
func netsh(ctx context.Context, line string) error {
	ctx, cancel := context.WithTimeout(ctx, commandWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemTool(`System32\netsh.exe`))
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: line, HideWindow: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// systemTool returns the path of a Windows tool under %SystemRoot%, so no
// search path (or current directory) can substitute another.
func systemTool(rel string) string {
	root := os.Getenv("SystemRoot")
	if root == "" {
		root = `C:\Windows`
	}
	return filepath.Join(root, rel)
}

// powershell runs a script with Windows PowerShell, passed encoded.
func powershell(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(ctx, commandWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemTool(`System32\WindowsPowerShell\v1.0\powershell.exe`), "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
		"-EncodedCommand", encodePowerShell(script))
	cmd.SysProcAttr = &syscall.SysProcAttr{HideWindow: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("powershell: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
