package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Capture watches, with tcpdump on the client's switch port, every SYN-ACK
// the VIPs send to the client, and finds SYNs answered by two different
// source MACs (two nodes accepting the same connection).
type Capture struct {
	lab     *Lab
	proc    *Proc
	tracker *synTracker
	readErr chan error    // the pcap reader's end: nil at EOF
	synced  atomic.Uint64 // last sync marker read back
	seq     atomic.Uint64 // last sync marker sent

	mu      sync.Mutex
	stderr  strings.Builder
	stopped bool
	final   Report
	stopErr error
}

// StartCapture starts tcpdump in the switch namespace on the client's bridge
// port and returns once tcpdump is listening. ctx bounds the start only; stop
// it with Stop (Close stops it too).
func (l *Lab) StartCapture(ctx context.Context) (*Capture, error) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return nil, fmt.Errorf("start capture: tcpdump not found (apt-get install tcpdump): %w", err)
	}
	// BPF cannot index TCP flags behind IPv6 by name: offset 53 is the flags
	// byte after a bare 40-byte IPv6 header (next header 6).
	filter := fmt.Sprintf("(src host %s and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack))"+
		" or (src host %s and ip6[6] == 6 and ip6[53] & 0x12 == 0x12)"+
		" or (ether proto 0x%04x)", l.VIP4, l.VIP6, uint16(markerType))
	c := &Capture{
		lab:     l,
		tracker: newSynTracker(l.macName),
		readErr: make(chan error, 1),
	}
	ready := make(chan struct{})
	l.mu.Lock()
	l.nCapture++
	name := "capture-" + strconv.Itoa(l.nCapture)
	l.mu.Unlock()
	args := []string{"tcpdump", "-i", l.Client.Port, "-n", "-s", "160", "-U", "--immediate-mode", "-w", "-", filter}
	// Plain pipes, not cmd.StdoutPipe: the lab reaps the process in the
	// background, and Wait would close those pipes before everything
	// tcpdump flushed at exit has been read.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start capture: %w", err)
	}
	stderr, stderrW, err := os.Pipe()
	if err != nil {
		stdout.Close()
		stdoutW.Close()
		return nil, fmt.Errorf("start capture: %w", err)
	}
	p, err := l.startProc(name, l.Switch.NS, args, "", func(cmd *exec.Cmd) error {
		cmd.Stdout, cmd.Stderr = stdoutW, stderrW
		return nil
	})
	// The child holds its own copies; ours must go so EOF comes at its exit.
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("start capture: %w", err)
	}
	c.proc = p
	go func() {
		defer stderr.Close()
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(ready)
			}
		}
	}()
	go func() {
		defer stdout.Close()
		c.readErr <- c.read(stdout)
	}()
	select {
	case <-ready:
	case <-p.Done():
		return nil, fmt.Errorf("start capture: tcpdump exited: %s", strings.TrimSpace(c.stderrText()))
	case <-ctx.Done():
		c.kill()
		return nil, fmt.Errorf("start capture: tcpdump not listening: %w", ctx.Err())
	}
	l.mu.Lock()
	l.captures[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

func (c *Capture) read(r io.Reader) error {
	pr, err := newPcapReader(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		return err
	}
	fp := newFrameParser()
	for {
		f, ci, err := pr.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		if s, ok := fp.synAck(f); ok {
			s.At = ci.Timestamp
			c.tracker.add(s)
		} else if n, ok := fp.marker(f); ok && n > c.synced.Load() {
			c.synced.Store(n)
		}
	}
}

// Report returns what the capture has read so far; call Sync first to be
// sure it includes everything sent before.
func (c *Capture) Report() Report { return c.tracker.report() }

// Sync waits until everything that crossed the client's port before the
// call has been read: it sends a marker frame out of that port and waits to
// read it back (resending every 200 ms, for at most 5 s or until ctx ends).
func (c *Capture) Sync(ctx context.Context) error {
	n := c.seq.Add(1)
	dst, err := net.ParseMAC(c.lab.Client.MAC)
	if err != nil {
		return fmt.Errorf("capture sync: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	frame := markerFrame(dst, n)
	next := time.Now()
	for c.synced.Load() < n {
		if time.Now().After(next) {
			if err := c.lab.sendFrame(c.lab.Switch.NS, c.lab.Client.Port, frame); err != nil {
				return fmt.Errorf("capture sync: %w", err)
			}
			next = time.Now().Add(200 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("capture sync: marker %d not read back: %w", n, ctx.Err())
		case <-c.proc.Done():
			return fmt.Errorf("capture sync: tcpdump exited: %s", strings.TrimSpace(c.stderrText()))
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// sendFrame sends a raw Ethernet frame out of interface dev in namespace ns.
func (l *Lab) sendFrame(ns, dev string, frame []byte) error {
	h, err := l.handle(ns)
	if err != nil {
		return err
	}
	return inNS(h, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", dev, ns, err)
		}
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket in %s: %w", ns, err)
		}
		defer syscall.Close(fd)
		sa := &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], frame[:6])
		if err := syscall.Sendto(fd, frame, 0, sa); err != nil {
			return fmt.Errorf("send frame on %s in %s: %w", dev, ns, err)
		}
		return nil
	})
}

// Stop syncs, ends tcpdump and returns the final report, with tcpdump's
// kernel drop count. Calling it again returns the same report.
func (c *Capture) Stop() (Report, error) {
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return c.final, c.stopErr
	}
	c.stopped = true
	c.mu.Unlock()

	var errs []error
	// tcpdump drops what it has not read yet when interrupted: read up to
	// a marker first.
	if err := c.Sync(context.Background()); err != nil {
		errs = append(errs, err)
	}
	_ = c.proc.Signal(syscall.SIGINT)
	select {
	case <-c.proc.Done():
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.proc.pid, syscall.SIGKILL)
		errs = append(errs, errors.New("tcpdump did not exit within 5s of SIGINT; killed"))
	}
	select {
	case err := <-c.readErr:
		if err != nil {
			errs = append(errs, fmt.Errorf("read capture: %w", err))
		}
	case <-time.After(5 * time.Second):
		errs = append(errs, errors.New("capture reader did not finish within 5s"))
	}
	r := c.tracker.report()
	r.KernelDropped = parseDropped(c.stderrText())
	c.lab.mu.Lock()
	delete(c.lab.captures, c)
	c.lab.mu.Unlock()
	c.mu.Lock()
	c.final, c.stopErr = r, errors.Join(errs...)
	c.mu.Unlock()
	return r, c.stopErr
}

// kill ends tcpdump at once (for Close and failed starts).
func (c *Capture) kill() {
	if c.proc != nil {
		_ = syscall.Kill(-c.proc.pid, syscall.SIGKILL)
	}
}

func (c *Capture) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// macName names a MAC by its node (web2) when it is one, else returns it.
func (l *Lab) macName(mac string) string {
	if h, ok := l.NodeByMAC(mac); ok {
		return h.Name
	}
	return mac
}

// FDB returns the switch's forwarding table (bridge fdb show br br0), so a
// test can assert the virtual MAC was never learned.
func (l *Lab) FDB(ctx context.Context) (FDB, error) {
	out, err := l.Exec(ctx, l.Switch.NS, "bridge", "-j", "fdb", "show", "br", l.Switch.Bridge)
	if err != nil {
		return nil, fmt.Errorf("read switch fdb: %w", err)
	}
	return parseFDB(out)
}
