package vip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Everything here acts on the network namespace of the calling thread: a
// caller that switched namespace must hold runtime.LockOSThread. Sockets and
// netlink handles keep the namespace they were created in.

// undoStack records how to revert each step, so a set-up that fails half way
// and a normal shutdown leave the host exactly as found.
type undoStack struct {
	steps []undoStep
}

type undoStep struct {
	what string
	fn   func() error
}

func (u *undoStack) push(what string, fn func() error) {
	u.steps = append(u.steps, undoStep{what, fn})
}

// run reverts every step, newest first, and reports all failures: a failed
// step must not stop the others from being undone.
func (u *undoStack) run(log *slog.Logger) error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.fn(); err != nil {
			log.Warn("Could not undo a VIP set-up step.", "step", s.what, "err", err)
			errs = append(errs, fmt.Errorf("undo %s: %w", s.what, err))
		}
	}
	u.steps = nil
	return errors.Join(errs...)
}

// nftTimeout bounds one nft invocation; it also applies while undoing, when
// the run's context is already cancelled.
const nftTimeout = 10 * time.Second

// runNft feeds script to `nft -f -`.
func runNft(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nftTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("nft not found in PATH (install the nftables package): %w", err)
		}
		return fmt.Errorf("nft -f - failed: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// sysctlPath turns "net/ipv4/conf/eth0/arp_ignore" into its /proc/sys file.
// Interface names are used literally (eth0.100 stays eth0.100 under procfs).
func sysctlPath(key string) string { return filepath.Join("/proc/sys", key) }

func readSysctl(key string) (int, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", key, err)
	}
	return v, nil
}

func writeSysctl(key string, v int) error {
	return os.WriteFile(sysctlPath(key), []byte(strconv.Itoa(v)+"\n"), 0o644)
}

// setSysctl writes v and pushes its restoration. The restore writes the
// original value back only if nobody changed the key since, so an
// operator's later edit is not clobbered.
func setSysctl(u *undoStack, log *slog.Logger, key string, v int) error {
	old, err := readSysctl(key)
	if err != nil {
		return err
	}
	if old == v {
		return nil
	}
	if err := writeSysctl(key, v); err != nil {
		return err
	}
	log.Debug("Changed a sysctl.", "key", key, "from", old, "to", v)
	u.push("restore sysctl "+key, func() error {
		cur, err := readSysctl(key)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // the device is gone, and its settings with it
			}
			return err
		}
		if cur != v {
			log.Warn("A sysctl changed by the VIP claim was changed again since; leaving it.", "key", key, "set", v, "now", cur, "original", old)
			return nil
		}
		return writeSysctl(key, old)
	})
	return nil
}

// ifreqHW is struct ifreq with its union used as ifr_hwaddr.
type ifreqHW struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	data   [14]byte
	_      [8]byte
}

// setLinkMulticast adds (SIOCADDMULTI) or removes (SIOCDELMULTI) a static
// link-layer multicast address, what `ip maddr add|del` does; rtnetlink has
// no equivalent. A static entry is one per (device, address): adding twice
// is a no-op, removing an absent one fails with ENOENT.
func setLinkMulticast(ifname string, mac net.HardwareAddr, add bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var r ifreqHW
	copy(r.name[:unix.IFNAMSIZ-1], ifname)
	r.family = unix.AF_UNSPEC
	copy(r.data[:], mac)
	req := uintptr(unix.SIOCDELMULTI)
	if add {
		req = unix.SIOCADDMULTI
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&r))); e != 0 {
		return e
	}
	return nil
}

// listLinkMulticast reads the link-layer multicast lists of the calling
// thread's namespace (/proc/thread-self, not /proc/self: the process's main
// thread may sit in another namespace).
func listLinkMulticast() ([]linkMulticast, error) {
	b, err := os.ReadFile("/proc/thread-self/net/dev_mcast")
	if err != nil {
		return nil, err
	}
	return parseDevMcast(string(b)), nil
}
