package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Announcements: three gratuitous ARPs / unsolicited NAs, 100 ms apart, so
// one lost frame does not leave a neighbour with a stale entry.
const (
	announceCount    = 3
	announceInterval = 100 * time.Millisecond
)

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE: no link-local address, so
// no DAD, MLD or router solicitation from the holder.
const in6AddrGenModeNone = 1

// Run claims every VIP, calls ready once they are claimed and announced,
// answers ARP/ND until ctx is cancelled, then removes everything it
// installed and restores the sysctls it changed. If set-up fails half way it
// undoes what was done and returns an error naming the VIP and the step.
//
// Per VIP number i, Run creates a macvlan farmv<i> (mode private, arp off)
// on the interface to hold the address: its egress is dropped by nftables
// before it comes up, so it never sends a frame. In vmac mode the holder's
// address is the virtual MAC and unicast frames for it land there; in
// multicast mode the parent listens to the multicast MAC and marks those
// frames as addressed to the host. The VIP never sits on the parent itself,
// which is what keeps the parent's kernel from answering ARP for it
// (arp_ignore=1 only ignores addresses of other interfaces) and from using
// it as the source of its own neighbour solicitations (which would teach
// clients the node's own MAC for the VIP).
//
// Run first removes what a crashed run left behind (see Cleanup). It acts in
// the network namespace of the calling thread.
func (c *Claim) Run(ctx context.Context, ready func()) (err error) {
	seen := make(map[netip.Addr]bool)
	for _, cfg := range c.cfgs {
		if err := cfg.Validate(); err != nil {
			return err
		}
		if seen[cfg.Addr] {
			return fmt.Errorf("vip %s: listed twice", cfg.Addr)
		}
		seen[cfg.Addr] = true
	}
	if len(c.cfgs) > maxVIPs {
		return fmt.Errorf("vip: %d VIPs configured, at most %d are supported", len(c.cfgs), maxVIPs)
	}

	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("vip: open netlink: %w", err)
	}
	defer h.Close()

	if err := cleanup(ctx, h, c.log); err != nil {
		return fmt.Errorf("vip: remove what a previous run left: %w", err)
	}

	var u undoStack
	defer func() {
		if c.parked.Load() && err == nil {
			c.log.Info("VIPs kept: this node's established flows carry on until the agent starts again (farm cleanup removes them).")
			return
		}
		if uerr := u.run(c.log); uerr != nil {
			err = errors.Join(err, fmt.Errorf("vip: clean-up incomplete (run `farm cleanup`): %w", uerr))
		}
	}()

	var rs []*responder
	if len(c.cfgs) > 0 {
		if err := runNft(ctx, nftCreateTable()); err != nil {
			return fmt.Errorf("vip: create nftables table netdev %s (a crashed agent may have left it: run `farm cleanup`): %w", nftTable, err)
		}
		// Pushed first so it is undone last, once every holder is gone and
		// can no longer send anything.
		u.push("delete nftables table "+nftTable, func() error { return runNft(ctx, nftDeleteTable()) })
	}
	for i, cfg := range c.cfgs {
		r, err := c.claim(ctx, h, &u, i, cfg)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, r := range rs {
		g.Go(func() error { return r.serve(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		for _, r := range rs {
			r.stop()
		}
		return nil
	})

	c.announce(gctx, rs)
	if gctx.Err() == nil {
		c.log.Info("VIPs claimed.", "count", len(rs))
		if ready != nil {
			ready()
		}
	}
	<-gctx.Done()
	err = g.Wait()
	c.log.Info("Releasing VIPs.", "count", len(rs))
	return err
}

func (c *Claim) announce(ctx context.Context, rs []*responder) {
	t := time.NewTimer(0)
	defer t.Stop()
	for n := range announceCount {
		if n > 0 {
			t.Reset(announceInterval)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		for _, r := range rs {
			if err := r.announce(); err != nil {
				c.log.Warn("Could not announce a VIP.", "vip", r.vip, "err", err)
			}
		}
	}
}

// claim sets up VIP number i; every step pushes its undo on u.
func (c *Claim) claim(ctx context.Context, h *netlink.Handle, u *undoStack, i int, cfg Config) (*responder, error) {
	name := holderName(i)
	log := c.log.With("vip", cfg.Addr, "interface", cfg.Interface, "mode", cfg.Mode, "device", name)
	fail := func(step string, err error) error {
		return fmt.Errorf("vip %s (%s mode on %s): %s: %w", cfg.Addr, cfg.Mode, cfg.Interface, step, err)
	}
	v4 := cfg.Addr.Is4()
	vmac := VirtualMAC(cfg.Addr, cfg.Mode)

	parent, err := h.LinkByName(cfg.Interface)
	if err != nil {
		return nil, fail("find interface (ip link lists interfaces)", err)
	}
	pa := parent.Attrs()
	if _, err := h.LinkByName(name); err == nil {
		return nil, fail("create "+name, fmt.Errorf("device %s already exists: a crashed agent left it; run `farm cleanup`", name))
	}

	// The parent must never answer ARP for the VIP with its own MAC, nor
	// use the VIP as sender when it resolves a client. Changed before the
	// holder exists so they are restored only after it is gone.
	if v4 {
		if err := c.parentARPSysctls(u, log, cfg.Interface); err != nil {
			return nil, fail("set ARP sysctls on "+cfg.Interface, err)
		}
	}

	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: pa.Index, HardwareAddr: holderMAC(cfg.Addr)},
		Mode:      netlink.MACVLAN_MODE_PRIVATE,
	}
	if err := h.LinkAdd(mv); err != nil {
		return nil, fail("create macvlan "+name, err)
	}
	u.push("delete "+name, func() error {
		l, err := h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
			return err
		}
		return h.LinkDel(l)
	})
	link, err := h.LinkByName(name)
	if err != nil {
		return nil, fail("find "+name, err)
	}
	if err := h.LinkSetARPOff(link); err != nil {
		return nil, fail("set arp off on "+name, err)
	}
	if err := runNft(ctx, nftVIPChains(i, name, cfg.Interface, cfg.Mode, vmac, cfg.Addr)); err != nil {
		return nil, fail("install nftables chains that mute "+name+" (needs the netdev egress hook, Linux 5.16+)", err)
	}
	if err := c.holderIPv6(h, link, name, v4); err != nil {
		return nil, fail("configure IPv6 on "+name, err)
	}
	if cfg.Mode == ModeVMAC && v4 {
		// Frames arrive on the holder while the route back to the client
		// leaves by the parent: strict reverse-path filtering would drop
		// them. Loose mode (2) is enough and, being the maximum, wins over
		// net.ipv4.conf.all.rp_filter, which is left alone.
		if err := writeSysctl("net/ipv4/conf/"+name+"/rp_filter", 2); err != nil {
			return nil, fail("set rp_filter on "+name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fail("bring "+name+" up", err)
	}
	if err := h.AddrAdd(link, vipAddr(cfg.Addr)); err != nil {
		return nil, fail("add the address to "+name, err)
	}

	if cfg.Mode == ModeMulticast {
		if err := setLinkMulticast(cfg.Interface, vmac, true); err != nil {
			return nil, fail("listen to multicast MAC "+vmac.String()+" on "+cfg.Interface, err)
		}
		u.push("remove multicast MAC "+vmac.String()+" from "+cfg.Interface, func() error {
			err := setLinkMulticast(cfg.Interface, vmac, false)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
				return nil
			}
			return err
		})
	}

	if cfg.Mode == ModeIGMP {
		// Joined once the chain that accepts the group's frames as the
		// host's is in place and the address is held, so the first frame
		// the switch delivers is taken. The socket holds the membership:
		// closing it (release, or the agent's death) leaves the group.
		g, err := joinGroup(pa.Index, GroupOf(cfg.Addr))
		if err != nil {
			return nil, fail("join multicast group "+GroupOf(cfg.Addr).String()+" on "+cfg.Interface, err)
		}
		u.push("leave multicast group "+GroupOf(cfg.Addr).String()+" on "+cfg.Interface, g.leave)
		log.Info("Joined the VIP's multicast group.", "group", GroupOf(cfg.Addr), "mac", vmac.String())
	}

	ifi := &net.Interface{Index: pa.Index, Name: pa.Name, HardwareAddr: pa.HardwareAddr, MTU: pa.MTU}
	r, err := openResponder(ifi, cfg.Addr, vmac, log)
	if err != nil {
		return nil, fail("start the ARP/ND responder", err)
	}
	u.push("close the responder of "+cfg.Addr.String(), r.close)
	log.Info("VIP claimed.", "vmac", vmac.String())
	return r, nil
}

// parentARPSysctls makes the parent ignore ARP requests for addresses of
// other interfaces (arp_ignore=1) and pick a sender address from the
// target's subnet when it resolves (arp_announce=2). The kernel uses the
// maximum of "all" and the interface's value; "all" is changed only when it
// holds an arp_ignore value that would still answer (3..7).
func (c *Claim) parentARPSysctls(u *undoStack, log *slog.Logger, ifname string) error {
	dev := "net/ipv4/conf/" + ifname + "/"
	all, err := readSysctl("net/ipv4/conf/all/arp_ignore")
	if err != nil {
		return err
	}
	cur, err := readSysctl(dev + "arp_ignore")
	if err != nil {
		return err
	}
	if !arpIgnoreOK(max(all, cur)) {
		if err := setSysctl(u, log, dev+"arp_ignore", 1); err != nil {
			return err
		}
		if !arpIgnoreOK(max(all, 1)) {
			if err := setSysctl(u, log, "net/ipv4/conf/all/arp_ignore", 1); err != nil {
				return err
			}
		}
	}
	all, err = readSysctl("net/ipv4/conf/all/arp_announce")
	if err != nil {
		return err
	}
	cur, err = readSysctl(dev + "arp_announce")
	if err != nil {
		return err
	}
	if max(all, cur) < 2 {
		return setSysctl(u, log, dev+"arp_announce", 2)
	}
	return nil
}

// arpIgnoreOK reports whether an effective arp_ignore value keeps an
// interface from answering for addresses held by other interfaces.
func arpIgnoreOK(v int) bool { return v == 1 || v == 2 || v >= 8 }

// holderIPv6 keeps the holder from ever originating IPv6 on its own (no
// link-local address, hence no DAD, MLD or router solicitation). IPv4
// holders get IPv6 disabled outright; IPv6 holders get it enabled even if
// net.ipv6.conf.default.disable_ipv6 is set. The egress drop chain is the
// backstop; this keeps the holder from even trying.
func (c *Claim) holderIPv6(h *netlink.Handle, link netlink.Link, name string, v4 bool) error {
	if _, err := os.Stat(sysctlPath("net/ipv6/conf/" + name)); err != nil {
		if v4 && errors.Is(err, os.ErrNotExist) {
			return nil // IPv6 is disabled in this kernel
		}
		return err
	}
	if err := h.LinkSetIP6AddrGenMode(link, in6AddrGenModeNone); err != nil {
		return fmt.Errorf("set addrgenmode none: %w", err)
	}
	for _, kv := range []struct {
		key string
		v   int
	}{{"accept_ra", 0}, {"accept_dad", 0}, {"disable_ipv6", boolInt(v4)}} {
		if err := writeSysctl("net/ipv6/conf/"+name+"/"+kv.key, kv.v); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// vipAddr is the VIP as a host address. IPv6 VIPs are added without DAD
// (every node holds the same address; DAD would fail or, worse, send) and
// deprecated (preferred lifetime 0, valid forever) so the kernel never picks
// the VIP as the source of connections this node opens; replies to clients
// still use it.
func vipAddr(a netip.Addr) *netlink.Addr {
	if a.Is4() {
		return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	}
	return &netlink.Addr{
		IPNet:       &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(128, 128)},
		Flags:       unix.IFA_F_NODAD,
		PreferedLft: 0,
		ValidLft:    math.MaxUint32,
	}
}
