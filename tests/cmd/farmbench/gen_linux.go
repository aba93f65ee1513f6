package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The load generator (`farmbench load`, run by the compare and kill
// scenarios inside the client namespace, one process per run so its CPU
// time is its own) and the UDP responder of the nodes (`farmbench udpecho`).
// wrk binds one source address; this one spreads its connections over many,
// one worker per connection, so affinity-by-client-IP filters see many
// clients, as in production.

// Load modes.
const (
	modeKeepAlive = "keep-alive" // one HTTP/1.1 connection per worker, requests back to back
	modeClose     = "close"      // Connection: close: a new TCP connection per request
	modeUDP       = "udp"        // one UDP socket (one flow) per worker, query/answer back to back
	modeUDPNew    = "udp-new"    // a new UDP socket (new source port, new flow) per query, like a DNS stub
)

var loadModes = []string{modeKeepAlive, modeClose, modeUDP, modeUDPNew}

// loadResult is what one `farmbench load` run prints (JSON on stdout).
type loadResult struct {
	Mode    string  `json:"mode"`
	Workers int     `json:"workers"`
	Seconds float64 `json:"seconds"`
	// Requests counts answered requests (status 200, or the UDP echo);
	// Failures the others, by class in Errors.
	Requests int64            `json:"requests"`
	Failures int64            `json:"failures"`
	Errors   map[string]int64 `json:"errors,omitempty"`
	// Conns counts TCP connections opened (UDP: sockets); Dials every
	// attempt (a SYN sent, retransmissions aside).
	Conns int64 `json:"conns"`
	Dials int64 `json:"dials"`
	// Slow counts requests that took longer than 900 ms: a SYN (or a UDP
	// query) that was dropped and retried.
	Slow int64 `json:"slow"`
	// Latency percentiles in microseconds (10 µs resolution).
	P50 float64 `json:"p50_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
	// PerNode counts answers by the node that sent them (the body).
	PerNode map[string]int64 `json:"per_node"`
	// UserS and SysS are the generator's own CPU time (getrusage).
	UserS float64 `json:"user_s"`
	SysS  float64 `json:"sys_s"`
}

// histogram bins latencies by 10 µs up to 200 ms.
const (
	histStep = 10 * time.Microsecond
	histBins = 20000
)

type worker struct {
	src      netip.Addr
	reqs     int64
	fails    int64
	conns    int64
	dials    int64
	slow     int64
	errs     map[string]int64
	perNode  map[string]*int64
	hist     []uint32
	max      time.Duration
	buf      []byte
	deadline time.Time     // end of the measured window
	interval time.Duration // paced load: one request per interval (0: back to back)
	next     time.Time
}

// pace waits for the worker's next slot of a paced load, skipping the slots
// a slow request overran.
func (w *worker) pace() {
	if w.interval <= 0 {
		return
	}
	now := time.Now()
	if w.next.IsZero() {
		w.next = now
	}
	if d := w.next.Sub(now); d > 0 {
		time.Sleep(d)
	}
	for w.next = w.next.Add(w.interval); w.next.Before(now); {
		w.next = w.next.Add(w.interval)
	}
}

func (w *worker) fail(class string) {
	w.fails++
	w.errs[class]++
}

func (w *worker) ok(d time.Duration, node []byte) {
	w.reqs++
	if d > 900*time.Millisecond {
		w.slow++
	}
	w.max = max(w.max, d)
	i := int(d / histStep)
	if i >= histBins {
		i = histBins - 1
	}
	w.hist[i]++
	if p, ok := w.perNode[string(node)]; ok {
		*p++
		return
	}
	n := int64(1)
	w.perNode[string(node)] = &n
}

func runLoad(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "10.213.0.100:80", "VIP:port")
	srcs := fs.String("sources", "", "comma-separated source addresses (one worker per address and -per)")
	per := fs.Int("per", 1, "workers (connections) per source address")
	mode := fs.String("mode", modeKeepAlive, "keep-alive | close | udp | udp-new")
	dur := fs.Duration("duration", 10*time.Second, "measured time")
	timeout := fs.Duration("timeout", 3*time.Second, "per-request timeout (longer than one SYN retransmission)")
	rate := fs.Float64("rate", 0, "requests per second in total, paced evenly over the workers (0: as fast as they go)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tgt, err := netip.ParseAddrPort(*target)
	if err != nil {
		fmt.Fprintf(stderr, "farmbench load: -target: %v\n", err)
		return 2
	}
	var addrs []netip.Addr
	for _, s := range strings.Split(*srcs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			fmt.Fprintf(stderr, "farmbench load: -sources: %v\n", err)
			return 2
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 || *per < 1 {
		fmt.Fprintln(stderr, "farmbench load: need -sources and -per >= 1")
		return 2
	}
	res, err := generate(tgt, addrs, *per, *mode, *dur, *timeout, *rate)
	if err != nil {
		fmt.Fprintf(stderr, "farmbench load: %v\n", err)
		return 1
	}
	_ = json.NewEncoder(stdout).Encode(res)
	return 0
}

// generate runs the load and sums the workers.
func generate(tgt netip.AddrPort, srcs []netip.Addr, per int, mode string, dur, timeout time.Duration, rate float64) (*loadResult, error) {
	var body func(*worker, time.Duration)
	req := []byte("GET / HTTP/1.1\r\nHost: " + tgt.Addr().String() + "\r\nUser-Agent: farmbench\r\n\r\n")
	reqClose := []byte("GET / HTTP/1.1\r\nHost: " + tgt.Addr().String() + "\r\nUser-Agent: farmbench\r\nConnection: close\r\n\r\n")
	switch mode {
	case modeKeepAlive:
		body = func(w *worker, to time.Duration) { keepAlive(w, tgt, req, to) }
	case modeClose:
		body = func(w *worker, to time.Duration) { closeEach(w, tgt, reqClose, to) }
	case modeUDP:
		body = func(w *worker, to time.Duration) { udpFlow(w, tgt, to, false) }
	case modeUDPNew:
		body = func(w *worker, to time.Duration) { udpFlow(w, tgt, to, true) }
	default:
		return nil, fmt.Errorf("-mode %q: want one of %s", mode, strings.Join(loadModes, ", "))
	}
	var ws []*worker
	for k := 0; k < per; k++ {
		for _, s := range srcs {
			ws = append(ws, &worker{src: s, errs: map[string]int64{}, perNode: map[string]*int64{},
				hist: make([]uint32, histBins), buf: make([]byte, 4096)})
		}
	}
	start := time.Now()
	end := start.Add(dur)
	var wg sync.WaitGroup
	for k, w := range ws {
		w.deadline = end
		if rate > 0 {
			w.interval = time.Duration(float64(len(ws)) / rate * float64(time.Second))
			w.next = start.Add(w.interval * time.Duration(k) / time.Duration(len(ws)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(w, timeout)
		}()
	}
	wg.Wait()
	res := &loadResult{Mode: mode, Workers: len(ws), Seconds: dur.Seconds(), Errors: map[string]int64{}, PerNode: map[string]int64{}}
	hist := make([]uint64, histBins)
	var maxLat time.Duration
	for _, w := range ws {
		res.Requests += w.reqs
		res.Failures += w.fails
		res.Conns += w.conns
		res.Dials += w.dials
		res.Slow += w.slow
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		for k, v := range w.perNode {
			res.PerNode[k] += *v
		}
		for i, c := range w.hist {
			hist[i] += uint64(c)
		}
		maxLat = max(maxLat, w.max)
	}
	res.P50, res.P99 = histQuantile(hist, 0.5), histQuantile(hist, 0.99)
	res.Max = float64(maxLat.Microseconds())
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.UserS = float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6
		res.SysS = float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
	}
	return res, nil
}

func histQuantile(h []uint64, q float64) float64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return 0
	}
	want := uint64(q * float64(n))
	var acc uint64
	for i, c := range h {
		acc += c
		if acc > want {
			return float64((time.Duration(i)*histStep + histStep/2).Microseconds())
		}
	}
	return float64((histBins * histStep).Microseconds())
}

// dialer binds the worker's source address without reserving a port at
// bind time (IP_BIND_ADDRESS_NO_PORT), so the port is picked per 4-tuple.
func dialer(src netip.Addr, timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:   timeout,
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return errors.Join(err, serr)
		},
	}
}

func keepAlive(w *worker, tgt netip.AddrPort, req []byte, timeout time.Duration) {
	d := dialer(w.src, timeout)
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		w.pace()
		t0 := time.Now()
		if !t0.Before(w.deadline) {
			return
		}
		if c == nil {
			var err error
			w.dials++
			c, err = d.Dial("tcp4", tgt.String())
			if err != nil {
				w.fail(errClass(err))
				c = nil
				continue
			}
			w.conns++
		}
		_ = c.SetDeadline(t0.Add(timeout))
		node, again, err := exchange(c, req, w.buf, false)
		now := time.Now()
		if err != nil {
			if now.Before(w.deadline) {
				w.fail(errClass(err))
			}
			c.Close()
			c = nil
			continue
		}
		if now.Before(w.deadline) {
			w.ok(now.Sub(t0), node)
		}
		if !again {
			c.Close()
			c = nil
		}
	}
}

func closeEach(w *worker, tgt netip.AddrPort, req []byte, timeout time.Duration) {
	d := dialer(w.src, timeout)
	for {
		w.pace()
		t0 := time.Now()
		if !t0.Before(w.deadline) {
			return
		}
		w.dials++
		c, err := d.Dial("tcp4", tgt.String())
		if err != nil {
			if time.Now().Before(w.deadline) {
				w.fail(errClass(err))
			}
			continue
		}
		w.conns++
		_ = c.SetDeadline(t0.Add(timeout))
		node, _, err := exchange(c, req, w.buf, true)
		c.Close()
		now := time.Now()
		if !now.Before(w.deadline) {
			return // ended outside the window: not counted either way
		}
		if err != nil {
			w.fail(errClass(err))
			continue
		}
		w.ok(now.Sub(t0), node)
	}
}

var (
	crlf2    = []byte("\r\n\r\n")
	status   = []byte("HTTP/1.1 200 ")
	hdrCL    = []byte("\r\ncontent-length:")
	hdrClose = []byte("\r\nconnection: close")
)

// exchange writes req and reads one response into buf; it returns the body
// (the node's name, trimmed) and whether the connection may be reused. With
// toEOF it also reads until the server closes (Connection: close), so the
// server, not the client, is the side that closes first.
func exchange(c net.Conn, req, buf []byte, toEOF bool) (node []byte, again bool, err error) {
	if _, err := c.Write(req); err != nil {
		return nil, false, err
	}
	n, hdrEnd := 0, -1
	for hdrEnd < 0 {
		if n == len(buf) {
			return nil, false, errors.New("response header too long")
		}
		r, err := c.Read(buf[n:])
		n += r
		if hdrEnd = bytes.Index(buf[:n], crlf2); hdrEnd >= 0 {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
	}
	hdr := buf[:hdrEnd+2]
	if !bytes.HasPrefix(hdr, status) {
		return nil, false, errStatus(statusCode(hdr))
	}
	lower(hdr)
	cl := -1
	if i := bytes.Index(hdr, hdrCL); i >= 0 {
		rest := hdr[i+len(hdrCL):]
		if j := bytes.Index(rest, []byte("\r\n")); j >= 0 {
			cl, _ = strconv.Atoi(strings.TrimSpace(string(rest[:j])))
		}
	}
	again = !bytes.Contains(hdr, hdrClose)
	bodyAt := hdrEnd + 4
	if cl < 0 || bodyAt+cl > len(buf) {
		return nil, false, errors.New("response without a usable content-length")
	}
	for n < bodyAt+cl {
		r, err := c.Read(buf[n:])
		n += r
		if err != nil && n < bodyAt+cl {
			return nil, false, err
		}
	}
	node = bytes.TrimSpace(buf[bodyAt : bodyAt+cl])
	if toEOF {
		var one [64]byte
		for {
			r, err := c.Read(one[:])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, false, err
			}
			if r > 0 {
				return nil, false, errors.New("data after the response")
			}
		}
	}
	return node, again, nil
}

// lower lower-cases ASCII letters in place (header names; values we read
// are numbers and "close").
func lower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

func statusCode(hdr []byte) int {
	f := bytes.Fields(hdr)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(string(f[1]))
	return n
}

// udpFlow sends DNS-sized queries (32 bytes) and waits for each echo: on
// one socket for the whole run, or (fresh) on a new socket, hence a new
// source port and a new conntrack flow, per query.
func udpFlow(w *worker, tgt netip.AddrPort, timeout time.Duration, fresh bool) {
	laddr := &net.UDPAddr{IP: w.src.AsSlice()}
	raddr := net.UDPAddrFromAddrPort(tgt)
	var c *net.UDPConn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	q := make([]byte, 32)
	var seq uint64
	for {
		w.pace()
		t0 := time.Now()
		if !t0.Before(w.deadline) {
			return
		}
		if c == nil {
			var err error
			c, err = net.DialUDP("udp4", laddr, raddr)
			if err != nil {
				w.fail(errClass(err))
				c = nil
				continue
			}
			w.conns++
		}
		seq++
		binary.BigEndian.PutUint64(q, seq)
		_ = c.SetDeadline(t0.Add(timeout))
		n, err := 0, error(nil)
		if _, err = c.Write(q); err == nil {
			for {
				n, err = c.Read(w.buf)
				// An answer to an earlier, timed-out query: keep waiting.
				if err != nil || (n >= len(q) && bytes.Equal(w.buf[:8], q[:8])) {
					break
				}
			}
		}
		now := time.Now()
		if err == nil && now.Before(w.deadline) {
			w.ok(now.Sub(t0), bytes.TrimSpace(w.buf[len(q):n]))
		} else if err != nil && now.Before(w.deadline) {
			w.fail(errClass(err))
		}
		if fresh || err != nil {
			c.Close()
			c = nil
		}
	}
}

// runUDPEcho answers every datagram to -listen with its payload followed by
// -name, from the address it was sent to (the VIP): the socket is bound to
// the VIP with IP_FREEBIND, so it may start before the agent claims it.
func runUDPEcho(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("udpecho", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "10.213.0.100:5353", "address:port to answer on")
	name := fs.String("name", "", "appended to every answer (the node's name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "farmbench udpecho: %v\n", err)
		return 1
	}
	c := pc.(*net.UDPConn)
	_ = c.SetReadBuffer(4 << 20)
	fmt.Fprintf(stderr, "farmbench udpecho: answering on %s as %q\n", *listen, *name)
	buf := make([]byte, 2048)
	tail := []byte("\n" + *name + "\n")
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf[:len(buf)-len(tail)])
		if err != nil {
			fmt.Fprintf(stderr, "farmbench udpecho: %v\n", err)
			return 1
		}
		m := n + copy(buf[n:], tail)
		_, _ = c.WriteToUDPAddrPort(buf[:m], from)
	}
}

// runLoadProc is one run of the generator as a child process in namespace ns,
// with the child's CPU time from the kernel's accounting.
func runLoadProc(ctx context.Context, ns string, tgt netip.AddrPort, srcs []netip.Addr, per int, mode string, dur time.Duration, rate float64) (*loadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ss := make([]string, len(srcs))
	for i, s := range srcs {
		ss[i] = s.String()
	}
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "load",
		"-target", tgt.String(), "-sources", strings.Join(ss, ","), "-per", strconv.Itoa(per),
		"-mode", mode, "-duration", dur.String(), "-rate", strconv.FormatFloat(rate, 'f', -1, 64))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("load generator (%s): %w: %s", mode, err, strings.TrimSpace(errb.String()))
	}
	var res loadResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("load generator output: %w: %q", err, out.String())
	}
	return &res, nil
}
