package member

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// memberlist keeps each node's suspect state in a private field (the
// exported Node.State it hands out is never updated), so this node cannot
// ask it whom it suspects. What a node cut off from the farm can notice
// by itself is silence: a node in a farm receives gossip packets all the
// time (acks of its own probes every probe interval, the others' probes,
// their gossip), and one whose gossip is cut off receives none. heard
// records, per source address, when a gossip packet last arrived: it is
// memberlist's transport; the membership loop turns a silence
// from every peer into suspicion of every peer, so the cut-off node loses
// quorum and stops answering on its own, in about as long as the majority
// needs to declare it dead.
type heard struct {
	udp *net.UDPConn
	tcp *net.TCPListener
	log *log.Logger

	ch      chan *memberlist.Packet
	streams chan net.Conn
	// stopping is closed when Shutdown starts: from then on the listeners
	// drop what they cannot hand on at once (memberlist may have stopped
	// reading) and end when their sockets close; wg waits for them.
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	last map[string]time.Time

	// cut makes the transport drop everything, both ways, as a broken
	// gossip link would: tests cut a node off with it.
	cut atomic.Bool
}

// heardLimit bounds the addresses remembered between two polls: packets
// come from anywhere on the gossip port (a stranger's are dropped by
// memberlist only after this), and the map must not grow with them.
const heardLimit = 1024

// udpReadBuf is the largest datagram read; udpSocketBuf the receive
// buffer asked of the kernel (halved until granted), as memberlist's own
// NetTransport does.
const (
	udpReadBuf   = 65536
	udpSocketBuf = 2 * 1024 * 1024
)

// newHeard listens for gossip on bindAddr:bindPort, TCP and UDP on the same
// port (a TCP port picked by the kernel if bindPort is 0).
//
// It replaces memberlist's NetTransport, which it wrapped before: that one
// allocates a fresh 64 KB buffer for every datagram it reads (a ping of a
// hundred bytes included), which made zeroing and collecting them a tenth
// of an idle agent's CPU, and its packets took one more goroutine hop
// through the wrapper. Here one buffer is reused and each packet gets a
// copy of its own size.
func newHeard(bindAddr string, bindPort int, logger *log.Logger) (*heard, error) {
	ip := net.ParseIP(bindAddr)
	if ip == nil {
		return nil, fmt.Errorf("bind address %q is not an IP address", bindAddr)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: bindPort})
	if err != nil {
		return nil, fmt.Errorf("TCP listener on %s: %w", net.JoinHostPort(bindAddr, strconv.Itoa(bindPort)), err)
	}
	port := tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		_ = tcp.Close()
		return nil, fmt.Errorf("UDP listener on %s: %w", net.JoinHostPort(bindAddr, strconv.Itoa(port)), err)
	}
	for size := udpSocketBuf; size > 0; size /= 2 {
		if err = udp.SetReadBuffer(size); err == nil {
			break
		}
	}
	if err != nil {
		_, _ = tcp.Close(), udp.Close()
		return nil, fmt.Errorf("UDP receive buffer on port %d: %w", port, err)
	}
	h := &heard{udp: udp, tcp: tcp, log: logger, ch: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		stopping: make(chan struct{}), last: map[string]time.Time{}}
	h.wg.Add(2)
	go h.readPackets()
	go h.acceptStreams()
	return h, nil
}

// bound is the address listened on, with the kernel's port when asked for 0.
func (h *heard) bound() *net.TCPAddr { return h.tcp.Addr().(*net.TCPAddr) }

// port is the port listened on.
func (h *heard) port() int { return h.bound().Port }

func (h *heard) stopped() bool {
	select {
	case <-h.stopping:
		return true
	default:
		return false
	}
}

// readPackets passes every datagram on to memberlist, noting its source
// first, until the socket closes.
func (h *heard) readPackets() {
	defer h.wg.Done()
	buf := make([]byte, udpReadBuf)
	for {
		n, from, err := h.udp.ReadFromUDP(buf)
		at := time.Now()
		if err != nil {
			if h.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 || h.cut.Load() {
			continue
		}
		h.note(from, at)
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: at}
		select {
		case h.ch <- p:
		case <-h.stopping: // memberlist may have stopped reading: drop it
		}
	}
}

// acceptStreams passes incoming TCP streams (push-pull, TCP pings) on,
// unless the node is cut off, until the listener closes. Accept errors
// other than the close are retried with a growing pause, as memberlist
// does.
func (h *heard) acceptStreams() {
	defer h.wg.Done()
	var pause time.Duration
	for {
		c, err := h.tcp.AcceptTCP()
		if err != nil {
			if h.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			h.log.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if h.cut.Load() {
			_ = c.Close()
			continue
		}
		select {
		case h.streams <- c:
		case <-h.stopping:
			_ = c.Close()
		}
	}
}

var errCut = errors.New("gossip cut off (test)")

func (h *heard) note(from net.Addr, at time.Time) {
	if from == nil {
		return
	}
	k := from.String()
	h.mu.Lock()
	if _, ok := h.last[k]; ok || len(h.last) < heardLimit {
		h.last[k] = at
	}
	h.mu.Unlock()
}

// take returns when each of addrs was last heard (zero if never) and
// forgets every other address.
func (h *heard) take(addrs []string) []time.Time {
	out := make([]time.Time, len(addrs))
	keep := make(map[string]time.Time, len(addrs))
	h.mu.Lock()
	for i, a := range addrs {
		out[i] = h.last[a]
		if !out[i].IsZero() {
			keep[a] = out[i]
		}
	}
	h.last = keep
	h.mu.Unlock()
	return out
}

// The memberlist.NodeAwareTransport methods.

// FinalAdvertiseAddr is the address the others are told to reach this node
// at: the one given, else (bound to every address) a private IP of this
// host, else the bound one; as memberlist's NetTransport decides.
func (h *heard) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("advertise address %q is not an IP address", ip)
		}
		if !a.IsUnspecified() {
			if a4 := a.To4(); a4 != nil {
				a = a4
			}
			return a, port, nil
		}
	}
	bound := h.bound()
	if !bound.IP.IsUnspecified() {
		return bound.IP, bound.Port, nil
	}
	priv, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("finding this host's address to advertise: %w", err)
	}
	a := net.ParseIP(priv)
	if a == nil {
		return nil, 0, errors.New("no private IP address to advertise: set gossip.advertise")
	}
	return a, h.port(), nil
}

func (h *heard) WriteTo(b []byte, addr string) (time.Time, error) {
	return h.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (h *heard) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if h.cut.Load() {
		return time.Now(), nil
	}
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = h.udp.WriteTo(b, to)
	return time.Now(), err
}

func (h *heard) PacketCh() <-chan *memberlist.Packet { return h.ch }

func (h *heard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return h.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (h *heard) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if h.cut.Load() {
		return nil, errCut
	}
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (h *heard) StreamCh() <-chan net.Conn { return h.streams }

// Shutdown closes the sockets and waits for the listeners to end; packets
// and streams they hold then are dropped.
func (h *heard) Shutdown() error {
	var err error
	h.stopOnce.Do(func() {
		close(h.stopping)
		err = errors.Join(h.tcp.Close(), h.udp.Close())
		h.wg.Wait()
	})
	return err
}

// silence is the pure rule: given when each live peer was last heard (or,
// if later, first seen) and how long a silence counts, it reports whether
// this node is cut off, that is every peer has been silent that long.
// A single silent peer proves nothing (it may just be dead, and the others
// declare it so); a farm of one has nobody to be cut off from.
func silence(last []time.Time, now time.Time, after time.Duration) bool {
	if len(last) == 0 {
		return false
	}
	for _, t := range last {
		if now.Sub(t) <= after {
			return false
		}
	}
	return true
}
