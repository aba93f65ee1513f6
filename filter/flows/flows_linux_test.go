package flows

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/internal/testenv"
)

// Test addresses on the namespace's loopback: two VIPs, a VIP of another
// farm (other) and one that has no flow at all (idle).
var (
	vip4  = netip.MustParseAddr("192.0.2.100")
	vip6  = netip.MustParseAddr("2001:db8::100")
	other = netip.MustParseAddr("192.0.2.101")
	idle  = netip.MustParseAddr("192.0.2.102")
)

const (
	mark1 = 0x0fa00001 // the node whose flows are counted
	mark2 = 0x0fa00002 // another node
	mask  = 0xffffffff
)

// ruleset marks flows by destination port, as the filter marks them by
// owner: port 8001 -> mark1, 8002 -> mark2, 8003 unmarked.
const ruleset = `
table inet farmflowstest {
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto { tcp, udp } th dport 8001 ct mark set 0x0fa00001
		meta l4proto { tcp, udp } th dport 8002 ct mark set 0x0fa00002
	}
}
`

// TestCountNetlink makes real conntrack entries in a namespace of its own
// (TCP connections through loopback, UDP datagrams) and counts them.
func TestCountNetlink(t *testing.T) {
	testenv.RequireRoot(t, "network namespace, nftables and conntrack", "ip", "nft")
	name := testenv.NewNetns(t, "flows") // removed last: its cleanup is the first registered
	testenv.EnterNetns(t, name)

	testenv.Run(t, "ip", "link", "set", "lo", "up")
	for _, a := range []netip.Addr{vip4, other, idle} {
		testenv.Run(t, "ip", "addr", "add", a.String()+"/32", "dev", "lo")
	}
	testenv.Run(t, "ip", "-6", "addr", "add", vip6.String()+"/128", "dev", "lo", "nodad")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nft := exec.CommandContext(ctx, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(ruleset)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}

	// Live flows: mark1 to vip4 (3 TCP, 1 UDP), to vip6 (2 TCP, 1 UDP) and
	// to other (1 TCP); mark2 to vip4 (1 TCP); unmarked to vip4 (1 TCP).
	for _, l := range []struct {
		a    netip.Addr
		port uint16
	}{{vip4, 8001}, {vip4, 8002}, {vip4, 8003}, {vip6, 8001}, {other, 8001}} {
		listenTCP(t, l.a, l.port)
	}
	first := dialTCP(t, vip4, 8001)
	dialTCP(t, vip4, 8001)
	dialTCP(t, vip4, 8001)
	sendUDP(t, vip4, 8001)
	dialTCP(t, vip6, 8001)
	dialTCP(t, vip6, 8001)
	sendUDP(t, vip6, 8001)
	dialTCP(t, other, 8001)
	dialTCP(t, vip4, 8002)
	dialTCP(t, vip4, 8003)

	both := []netip.Addr{vip4, vip6}
	waitCount(t, mark1, mask, both, 7)

	tests := []struct {
		name       string
		mark, mask uint32
		vips       []netip.Addr
		want       int
	}{
		{"ipv4 vip", mark1, mask, []netip.Addr{vip4}, 4},
		{"ipv6 vip", mark1, mask, []netip.Addr{vip6}, 3},
		{"both vips", mark1, mask, both, 7},
		{"vip listed twice counts once", mark1, mask, []netip.Addr{vip4, vip4}, 4},
		{"another farm's vip", mark1, mask, []netip.Addr{other}, 1},
		{"vip without flows", mark1, mask, []netip.Addr{idle}, 0},
		{"no vips", mark1, mask, nil, 0},
		{"another node's mark", mark2, mask, []netip.Addr{vip4}, 1},
		{"a mark nobody uses", 0x0fa00003, mask, both, 0},
		{"mask covers both nodes", 0x0fa00000, 0xffffff00, []netip.Addr{vip4}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.EnterNetns(t, name) // a subtest runs on a goroutine of its own
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := Count(ctx, tt.mark, tt.mask, tt.vips)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Count(0x%08x/0x%08x, %v) = %d, want %d\n%s", tt.mark, tt.mask, tt.vips, got, tt.want, conntrackList())
			}
		})
	}

	t.Run("closed flow stops counting", func(t *testing.T) {
		testenv.EnterNetns(t, name)
		first.Close() // FIN: the entry leaves ESTABLISHED
		waitCount(t, mark1, mask, []netip.Addr{vip4}, 3)
	})

	t.Run("ended context", func(t *testing.T) {
		testenv.EnterNetns(t, name)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		for _, c := range []struct {
			ctx  context.Context
			want error
		}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
			if _, err := Count(c.ctx, mark1, mask, both); !errors.Is(err, c.want) {
				t.Errorf("Count = %v, want %v", err, c.want)
			}
		}
	})
}

// waitCount polls Count until it returns want, for at most 5 s.
func waitCount(t *testing.T, mark, mask uint32, vips []netip.Addr, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, err := Count(ctx, mark, mask, vips)
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Count(0x%08x/0x%08x, %v) = %d, %v after 5s; want %d\n%s", mark, mask, vips, got, err, want, conntrackList())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listenTCP accepts connections on a:port until the test ends, keeping
// every accepted connection open until then.
func listenTCP(t *testing.T, a netip.Addr, port uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a, port).String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
}

// dialTCP connects to a:port and keeps the connection open until the test
// ends (or the caller closes it).
func dialTCP(t *testing.T, a netip.Addr, port uint16) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", netip.AddrPortFrom(a, port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendUDP sends one datagram to a:port and waits until a listener there
// has it, so the entry is confirmed.
func sendUDP(t *testing.T, a netip.Addr, port uint16) {
	t.Helper()
	ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("flow")); err != nil {
		t.Fatal(err)
	}
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ln.ReadFromUDP(make([]byte, 16)); err != nil {
		t.Fatalf("udp to %v:%d not received: %v", a, port, err)
	}
}

// conntrackList is the namespace's conntrack table for failure messages,
// when conntrack(8) is there.
func conntrackList() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "conntrack", "-L").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(conntrack -L: %v)", err)
	}
	return "conntrack -L:\n" + string(out)
}
