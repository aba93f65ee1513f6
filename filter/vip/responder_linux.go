package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// responder answers ARP (IPv4) or neighbour solicitations (IPv6) for one VIP
// on the parent interface. It uses a packet socket so it writes the Ethernet
// header itself: Ethernet source = the parent's own MAC, payload = the
// virtual MAC. A packet socket on the parent also sees frames that the
// macvlan holder steals (unicast ARP/NS probes sent to the virtual MAC),
// because the kernel delivers protocol taps of the original device too.
type responder struct {
	vip  netip.Addr
	own  net.HardwareAddr
	vmac net.HardwareAddr
	conn *packet.Conn
	// group is a socket holding membership of the VIP's solicited-node group
	// on the parent (IPv6 only, -1 otherwise): without it a NIC's multicast
	// filter, or an MLD-snooping switch, would not deliver the NS.
	group int
	log   *slog.Logger
}

// openResponder opens the sockets in the calling thread's namespace.
func openResponder(parent *net.Interface, vip netip.Addr, vmac net.HardwareAddr, log *slog.Logger) (*responder, error) {
	r := &responder{vip: vip, own: parent.HardwareAddr, vmac: vmac, group: -1, log: log}
	if len(r.own) != 6 {
		return nil, fmt.Errorf("interface %q has no Ethernet address", parent.Name)
	}
	var err error
	if vip.Is4() {
		filter, ferr := arpFilter(vip)
		if ferr != nil {
			return nil, ferr
		}
		r.conn, err = packet.Listen(parent, packet.Raw, unix.ETH_P_ARP, &packet.Config{Filter: filter})
		if err != nil {
			return nil, fmt.Errorf("open ARP packet socket: %w", err)
		}
		return r, nil
	}
	filter, err := nsFilter(vip)
	if err != nil {
		return nil, err
	}
	r.conn, err = packet.Listen(parent, packet.Raw, unix.ETH_P_IPV6, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("open IPv6 packet socket: %w", err)
	}
	if err := r.join(parent.Index); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *responder) join(ifindex int) error {
	snm, err := ndp.SolicitedNodeMulticast(r.vip)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open socket to join %s: %w", snm, err)
	}
	mreq := &unix.IPv6Mreq{Multiaddr: snm.As16(), Interface: uint32(ifindex)}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
		unix.Close(fd)
		return fmt.Errorf("join solicited-node group %s (is IPv6 disabled on the interface?): %w", snm, err)
	}
	r.group = fd
	return nil
}

func (r *responder) close() error {
	var errs []error
	if r.conn != nil {
		errs = append(errs, r.conn.Close())
	}
	if r.group >= 0 {
		errs = append(errs, unix.Close(r.group))
		r.group = -1
	}
	return errors.Join(errs...)
}

// stop unblocks serve.
func (r *responder) stop() { _ = r.conn.SetReadDeadline(time.Unix(1, 0)) }

// announce sends one gratuitous ARP or unsolicited NA.
func (r *responder) announce() error {
	var (
		f   []byte
		err error
		dst net.HardwareAddr
	)
	if r.vip.Is4() {
		f, err = gratuitousARPFrame(r.own, r.vmac, r.vip)
		dst = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	} else {
		f, err = unsolicitedNAFrame(r.own, r.vmac, r.vip)
		dst = allNodesMAC
	}
	if err != nil {
		return err
	}
	_, err = r.conn.WriteTo(f, &packet.Addr{HardwareAddr: dst})
	return err
}

// serve answers requests until ctx ends (stop unblocks the read). A socket
// error is returned: without its responder the VIP cannot be resolved.
func (r *responder) serve(ctx context.Context) error {
	buf := make([]byte, 2048)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // stopped
			}
			if errors.Is(err, syscall.ENETDOWN) {
				// The link went down (cable, switch port, an operator): the
				// socket reports it once. Keep the responder: the node
				// must answer again the moment the link is back.
				r.log.Warn("The VIP's interface is down; waiting for it to come back.", "vip", r.vip)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			return fmt.Errorf("vip %s: read ARP/ND requests: %w", r.vip, err)
		}
		reply, dst, ok := r.answer(buf[:n])
		if !ok {
			continue
		}
		if _, err := r.conn.WriteTo(reply, &packet.Addr{HardwareAddr: dst}); err != nil {
			r.log.Warn("Could not send an ARP/ND reply for the VIP.", "err", err)
		}
	}
}

func (r *responder) answer(frame []byte) ([]byte, net.HardwareAddr, bool) {
	if r.vip.Is4() {
		req, ok := arpRequestFor(frame, r.vip)
		if !ok {
			return nil, nil, false
		}
		f, err := arpReplyFrame(req, r.own, r.vmac, r.vip)
		if err != nil {
			return nil, nil, false
		}
		return f, req.SenderHardwareAddr, true
	}
	s, ok := nsFor(frame, r.vip)
	if !ok {
		return nil, nil, false
	}
	f, err := naReplyFrame(s, r.own, r.vmac, r.vip)
	if err != nil {
		return nil, nil, false
	}
	return f, s.srcMAC, true
}
