package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"
)

// Cleanup removes what a crashed agent's Claim left behind, recognised by
// name: farmv<N> macvlan devices (and the VIP addresses on them), the
// nftables table netdev farm_vip, and static link-layer multicast entries
// with this package's multicast prefix (03:bf / 03:be). It is idempotent.
// Sysctls changed by the crashed run cannot be told apart from an
// operator's and are left (arp_ignore=1, arp_announce=2 are harmless).
// Run calls it first, so an agent restarted after a crash starts clean.
// It acts in the network namespace of the calling thread.
func Cleanup(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("vip cleanup: open netlink: %w", err)
	}
	defer h.Close()
	return cleanup(ctx, h, log)
}

func cleanup(ctx context.Context, h *netlink.Handle, log *slog.Logger) error {
	var errs []error

	// Holders first: the table's egress chains keep them mute until they
	// are gone.
	links, err := h.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("vip cleanup: list links: %w", err))
	}
	for _, l := range links {
		name := l.Attrs().Name
		if !isHolderName(name) || l.Type() != "macvlan" {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			var nf netlink.LinkNotFoundError
			if !errors.As(err, &nf) {
				errs = append(errs, fmt.Errorf("vip cleanup: delete %s: %w", name, err))
			}
			continue
		}
		log.Info("Removed a leftover VIP device.", "device", name)
	}
	if err := runNft(ctx, nftDeleteTable()); err != nil {
		errs = append(errs, fmt.Errorf("vip cleanup: delete nftables table netdev %s: %w", nftTable, err))
	}
	mcs, err := listLinkMulticast()
	if err != nil {
		errs = append(errs, fmt.Errorf("vip cleanup: list link multicast addresses: %w", err))
	}
	for _, m := range mcs {
		if !m.static || !isOurMulticastMAC(m.mac) {
			continue
		}
		if err := setLinkMulticast(m.ifname, m.mac, false); err != nil {
			errs = append(errs, fmt.Errorf("vip cleanup: remove multicast MAC %s from %s: %w", m.mac, m.ifname, err))
			continue
		}
		log.Info("Removed a leftover multicast MAC.", "interface", m.ifname, "mac", m.mac.String())
	}
	return errors.Join(errs...)
}
