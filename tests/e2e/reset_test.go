//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webfarm/farm/tests/lab"
)

// rsConn is one keep-alive HTTP connection from one client source, spoken
// by hand so that nothing (net/http's retry of idempotent requests on a
// fresh connection, say) hides what happens to it.
type rsConn struct {
	src  netip.Addr
	node string // who answered its first request
	c    net.Conn
	r    *bufio.Reader
}

// get sends one request on the connection and reads the answer's body
// (nginx answers the node's name): it returns the name, or the error the
// connection met within d.
func (c *rsConn) get(d time.Duration) (string, error) {
	_ = c.c.SetDeadline(time.Now().Add(d))
	if _, err := fmt.Fprintf(c.c, "GET / HTTP/1.1\r\nHost: farm\r\n\r\n"); err != nil {
		return "", err
	}
	status, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.Contains(status, " 200 ") {
		return "", fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	n := 0
	for {
		h, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		h = strings.TrimSpace(h)
		if h == "" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "content-length") {
			if _, err := fmt.Sscan(strings.TrimSpace(v), &n); err != nil {
				return "", fmt.Errorf("content-length %q", v)
			}
		}
	}
	body := make([]byte, n)
	if _, err := ioReadFull(c.r, body); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(body)), nil
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// rsOpen opens one keep-alive connection per source to its VIP and notes
// who answered.
func rsOpen(t *testing.T, l *lab.Lab, srcs []netip.Addr) []*rsConn {
	t.Helper()
	var out []*rsConn
	for _, src := range srcs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := l.DialContext("client", src)(ctx, "tcp", net.JoinHostPort(l.VIPFor(src).String(), "80"))
		cancel()
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		rc := &rsConn{src: src, c: c, r: bufio.NewReader(c)}
		t.Cleanup(func() { _ = c.Close() })
		if rc.node, err = rc.get(5 * time.Second); err != nil {
			t.Fatalf("first request from %s: %v", src, err)
		}
		out = append(out, rc)
	}
	return out
}

// rsOn returns the connections node answered, and says so if there are
// none of each family (the test would prove nothing for it).
func rsOn(t *testing.T, conns []*rsConn, node string) []*rsConn {
	t.Helper()
	var out []*rsConn
	var v4, v6 int
	for _, c := range conns {
		if c.node == node {
			out = append(out, c)
			if c.src.Is4() {
				v4++
			} else {
				v6++
			}
		}
	}
	if v4 == 0 || v6 == 0 {
		t.Fatalf("%s holds %d IPv4 and %d IPv6 connections: need some of each", node, v4, v6)
	}
	return out
}

// cutLink takes node i's switch port down: its host is gone for everyone
// (frames and gossip), as when it loses power. It returns the heal function.
func (f *farm) cutLink(i int) func() {
	f.t.Helper()
	set := func(state string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := f.l.Exec(ctx, f.l.Switch.NS, "ip", "link", "set", f.l.Node(i).Port, state)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := set("down"); err != nil {
		f.t.Fatalf("cut web%d's link: %v", i, err)
	}
	return func() {
		if err := set("up"); err != nil {
			f.t.Errorf("heal web%d's link: %v", i, err)
		}
	}
}

// resetLike reports whether err is the connection being reset (what the
// reset window promises), as opposed to a hang or a clean close.
func resetLike(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || (err != nil && strings.Contains(err.Error(), "connection reset"))
}

// TestResetWindow checks the promise of filter.reset_window over IPv4 and
// IPv6 keep-alive connections in four cases:
//   - a node's agent is SIGKILLed while its host lives: its kernel keeps
//     serving its established flows, and the peers that take its buckets
//     over must not reset them;
//   - a node's agent is frozen (SIGSTOP) long enough to be declared dead:
//     its kernel still answers its buckets, so the others leave them to it
//     and no SYN is answered twice;
//   - a node's host dies (its link is cut): its clients' next request is
//     answered with a reset by the new owner within the window, so they
//     reconnect at once instead of hanging, and the reconnect is served;
//   - a node is drained (it keeps its established flows, its buckets go to
//     the others) and then its host dies: the flows it kept are orphans in
//     buckets the others gained from a live node, and they too are reset.
func TestResetWindow(t *testing.T) {
	f := startFarm(t, 3, "")
	srcs := f.l.Sources(24) // 24 IPv4 and 24 IPv6 sources
	deadline := 5 * time.Second

	t.Run("agent killed, host alive", func(t *testing.T) {
		conns := rsOpen(t, f.l, srcs)
		on2 := rsOn(t, conns, "web2")
		if err := f.agents[1].Kill(); err != nil {
			t.Fatal(err)
		}
		f.agents[1] = nil
		f.waitUp(2, 10*time.Second)
		t.Logf("web2's agent killed: %d of its connections (IPv4 and IPv6) to check", len(on2))
		for _, c := range on2 {
			got, err := c.get(deadline)
			if err != nil || got != "web2" {
				t.Errorf("%s: web2's connection after its agent was killed: %q, %v (want web2 to answer it: its kernel keeps the flow)", c.src, got, err)
			}
		}
		f.startAgent(2, "")
		f.waitUp(3, 20*time.Second)
	})

	t.Run("agent frozen", func(t *testing.T) {
		// SIGSTOP web2's agent: the others declare it dead, but its process
		// still holds its gossip port. With the kernel engine its owner
		// table keeps answering its buckets, so the others leave them to
		// it; with a user-space engine it answers nothing, so they take
		// them. Either way every new connection is answered, by one node.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conns := rsOpen(t, f.l, srcs)
		on2 := rsOn(t, conns, "web2")
		capt, err := f.l.StartCapture(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.agents[1].Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		thawed := false
		thaw := func() {
			if !thawed {
				thawed = true
				if err := f.agents[1].Signal(syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
		defer thaw()
		declared := f.waitStatus(1, 10*time.Second, "web1 to see web2 down", func(st statusView) error {
			if st.States["web2"] != "down" {
				return fmt.Errorf("web2 is %q", st.States["web2"])
			}
			return nil
		})
		res := f.l.Burst(ctx, srcs, 2, f.l.VIPURL)
		for _, c := range on2 {
			if got, err := c.get(deadline); err != nil || got != "web2" {
				t.Errorf("%s: frozen web2's connection: %q, %v", c.src, got, err)
			}
		}
		thaw()
		_ = capt.Sync(ctx)
		rep, _ := capt.Stop()
		t.Logf("web2's agent frozen, declared down after %v; new connections meanwhile:\n%s", declared.Round(time.Millisecond), res.Table())
		if len(res.Failures) > 0 {
			t.Errorf("%d of %d new connections failed while web2's agent was frozen, first: %+v", len(res.Failures), res.Requests, res.Failures[0])
		}
		if len(rep.Doubles) > 0 {
			t.Errorf("%d SYNs answered twice while web2's agent was frozen: %v", len(rep.Doubles), rep.Doubles[0])
		}
		switch lab.Engine() {
		case "kernel":
			if res.PerNode["web2"] == 0 {
				t.Error("frozen web2's kernel answered none of its buckets' new connections (its owner table should)")
			}
		default:
			// A user-space engine answers nothing while its agent is
			// frozen: the others take its buckets over.
			if res.PerNode["web2"] != 0 {
				t.Errorf("frozen web2 answered %d new connections with a user-space engine", res.PerNode["web2"])
			}
		}
		f.waitUp(3, 20*time.Second)
	})

	t.Run("host dead", func(t *testing.T) {
		conns := rsOpen(t, f.l, srcs)
		on3 := rsOn(t, conns, "web3")
		heal := f.cutLink(3)
		_ = f.agents[2].Kill()
		f.agents[2] = nil
		healed := false
		defer func() {
			if !healed {
				heal()
			}
		}()
		f.waitUp(2, 10*time.Second)
		var worst time.Duration
		for _, c := range on3 {
			start := time.Now()
			got, err := c.get(deadline)
			worst = max(worst, time.Since(start))
			if !resetLike(err) {
				t.Errorf("%s: request on dead web3's connection: %q, %v after %v (want a reset)", c.src, got, err, time.Since(start).Round(time.Millisecond))
			}
		}
		t.Logf("%d connections of dead web3 (IPv4 and IPv6) reset; slowest answer %v", len(on3), worst.Round(time.Millisecond))
		for _, c := range conns {
			if c.node != "web3" {
				if got, err := c.get(deadline); err != nil || got != c.node {
					t.Errorf("%s: %s's connection broke when web3 died: %q, %v", c.src, c.node, got, err)
				}
			}
		}
		again := rsOpen(t, f.l, srcsOf(on3))
		for _, c := range again {
			if c.node == "web3" {
				t.Errorf("%s: reconnect answered by dead web3", c.src)
			}
		}
		heal()
		healed = true
		f.startAgent(3, "")
		f.waitUp(3, 20*time.Second)
	})

	t.Run("drained then dead", func(t *testing.T) {
		conns := rsOpen(t, f.l, srcs)
		on2 := rsOn(t, conns, "web2")
		f.pcAct(1, "drain", "web2")
		f.pcWaitState("web2", "draining")
		for _, c := range on2 {
			if got, err := c.get(deadline); err != nil || got != "web2" {
				t.Fatalf("%s: draining web2's connection: %q, %v (a drain keeps flows)", c.src, got, err)
			}
		}
		heal := f.cutLink(2)
		_ = f.agents[1].Kill()
		f.agents[1] = nil
		defer heal()
		f.waitUp(2, 10*time.Second)
		var worst time.Duration
		for _, c := range on2 {
			start := time.Now()
			got, err := c.get(deadline)
			worst = max(worst, time.Since(start))
			if !resetLike(err) {
				t.Errorf("%s: request on drained-then-dead web2's connection: %q, %v after %v (want a reset)", c.src, got, err, time.Since(start).Round(time.Millisecond))
			}
		}
		t.Logf("%d connections web2 kept while draining (IPv4 and IPv6) reset after its host died; slowest answer %v", len(on2), worst.Round(time.Millisecond))
	})
}

func srcsOf(conns []*rsConn) []netip.Addr {
	out := make([]netip.Addr, len(conns))
	for i, c := range conns {
		out[i] = c.src
	}
	return out
}
