//go:build linux

package vip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/webfarm/farm/internal/testenv"
	"golang.org/x/sys/unix"
)

// The lab: a switch namespace with a Linux bridge (default settings: MAC
// learning on, default ageing), two farm nodes and a client, each attached by
// a veth. Both nodes claim the same IPv4 and IPv6 VIP.

const (
	labVIP4 = "10.77.0.100"
	labVIP6 = "fd77::100"
)

var labHosts = []struct {
	role string
	ip4  string
	ip6  string
}{
	{"n1", "10.77.0.1", "fd77::1"},
	{"n2", "10.77.0.2", "fd77::2"},
	{"cl", "10.77.0.10", "fd77::10"},
}

type lab struct {
	ns   map[string]string // role -> namespace name
	macs map[string]string // role -> eth0 MAC
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{ns: map[string]string{}, macs: map[string]string{}}
	for _, role := range []string{"sw", "n1", "n2", "cl"} {
		name := testenv.NewNetns(t, "vip-"+role)
		l.ns[role] = name
		// Link-local addresses usable at once, as on a host that has been
		// up for more than a second: a node resolves clients from its
		// parent's link-local address.
		testenv.Run(t, "ip", "netns", "exec", name, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad")
	}
	sw := l.ns["sw"]
	testenv.Run(t, "ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	testenv.Run(t, "ip", "-n", sw, "link", "set", "br0", "up")
	for i, h := range labHosts {
		ns, port := l.ns[h.role], "p"+strconv.Itoa(i+1)
		testenv.Run(t, "ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		testenv.Run(t, "ip", "-n", sw, "link", "set", port, "master", "br0", "up")
		testenv.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		testenv.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		testenv.AddAddrs(t, ns, "eth0", h.ip4+"/24", h.ip6+"/64")
		f := strings.Fields(testenv.Run(t, "ip", "-n", ns, "-o", "link", "show", "eth0"))
		for j := range f {
			if f[j] == "link/ether" && j+1 < len(f) {
				l.macs[h.role] = f[j+1]
			}
		}
	}
	for _, n := range []string{"n1", "n2"} {
		// Strict reverse-path filtering host-wide, as many distributions
		// ship: the claim must cope without touching it.
		l.exec(t, n, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter")
	}
	return l
}

func (l *lab) exec(t *testing.T, role string, args ...string) string {
	t.Helper()
	return testenv.Run(t, "ip", append([]string{"netns", "exec", l.ns[role]}, args...)...)
}

func (l *lab) sysctl(t *testing.T, role, key string) string {
	t.Helper()
	return strings.TrimSpace(l.exec(t, role, "cat", "/proc/sys/"+key))
}

type testWriter struct {
	t  *testing.T
	mu *sync.Mutex
	on *bool
}

func (w testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *w.on {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

func testLogger(t *testing.T, name string) *slog.Logger {
	on, mu := true, &sync.Mutex{}
	t.Cleanup(func() { mu.Lock(); on = false; mu.Unlock() })
	return slog.New(slog.NewTextHandler(testWriter{t, mu, &on}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// runningClaim is a Claim running in a node namespace.
type runningClaim struct {
	cancel context.CancelFunc
	done   <-chan error
}

func startClaim(t *testing.T, ns, name string, cfgs []Config) *runningClaim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- testenv.InNetns(ns, func() error {
			return New(cfgs, testLogger(t, name)).Run(ctx, func() { close(ready) })
		})
	}()
	rc := &runningClaim{cancel: cancel, done: done}
	t.Cleanup(func() { rc.stop(t) })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: Run returned before ready: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run not ready after 10 s", name)
	}
	return rc
}

// stop cancels the claim and returns Run's error (once; later calls return nil).
func (rc *runningClaim) stop(t *testing.T) error {
	t.Helper()
	if rc.done == nil {
		return nil
	}
	rc.cancel()
	var err error
	select {
	case err = <-rc.done:
	case <-time.After(15 * time.Second):
		err = fmt.Errorf("Run did not return 15 s after cancel")
	}
	rc.done = nil
	return err
}

// sniffer records every frame crossing the switch namespace (all its
// interfaces), to prove the virtual MAC never appears as a source.
type sniffer struct {
	mu      sync.Mutex
	sources map[string]int
	arps    map[string]int // "Ethernet source -> ARP sender hardware address" of ARP replies and announcements
	conn    *packet.Conn
	done    chan struct{}
}

func startSniffer(t *testing.T, ns string) *sniffer {
	t.Helper()
	s := &sniffer{sources: map[string]int{}, arps: map[string]int{}, done: make(chan struct{})}
	err := testenv.InNetns(ns, func() error {
		var err error
		// Index 0 binds to every interface of the namespace.
		s.conn, err = packet.Listen(&net.Interface{Index: 0}, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("open sniffer socket in %s: %v", ns, err)
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, _, err := s.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 14 {
				continue
			}
			src := net.HardwareAddr(buf[6:12]).String()
			s.mu.Lock()
			s.sources[src]++
			if n >= 28 && buf[12] == 0x08 && buf[13] == 0x06 {
				s.arps[src+" -> "+net.HardwareAddr(buf[22:28]).String()]++
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *sniffer) stop() {
	if s.conn == nil {
		return
	}
	s.conn.Close()
	<-s.done
	s.conn = nil
}

func snmpValue(t *testing.T, text, proto, field string) int {
	t.Helper()
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], proto+": ") || !strings.HasPrefix(lines[i+1], proto+": ") {
			continue
		}
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range names {
			if names[j] == field && j < len(vals) {
				v, err := strconv.Atoi(vals[j])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in snmp", proto, field)
	return 0
}

func (l *lab) tcpInSegs(t *testing.T, role string) int {
	return snmpValue(t, l.exec(t, role, "cat", "/proc/net/snmp"), "Tcp", "InSegs")
}

// poll calls cond until it returns "" or the deadline passes, then fails
// with cond's last explanation.
func poll(t *testing.T, d time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var watchedSysctls = []string{
	"net/ipv4/conf/eth0/arp_ignore",
	"net/ipv4/conf/eth0/arp_announce",
	"net/ipv4/conf/all/arp_ignore",
	"net/ipv4/conf/all/arp_announce",
	"net/ipv4/conf/all/rp_filter",
}

func TestClaimLab(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces", "ip", "nft", "bridge", "bash", "timeout")
	for _, mode := range []Mode{ModeVMAC, ModeMulticast, ModeIGMP} {
		t.Run(mode.String(), func(t *testing.T) { testClaimLab(t, mode) })
	}
}

func testClaimLab(t *testing.T, mode Mode) {
	l := newLab(t)
	vip4, vip6 := netip.MustParseAddr(labVIP4), netip.MustParseAddr(labVIP6)
	cfgs := []Config{{vip4, "eth0", mode}, {vip6, "eth0", mode}}
	vmac4, vmac6 := VirtualMAC(vip4, mode).String(), VirtualMAC(vip6, mode).String()
	// MACs that must never be a source on the wire: the virtual MACs and
	// the holders' addresses (the same in vmac mode).
	secret := []string{vmac4, vmac6, holderMAC(vip4).String(), holderMAC(vip6).String()}

	before := map[string]map[string]string{}
	for _, n := range []string{"n1", "n2"} {
		before[n] = map[string]string{}
		for _, k := range watchedSysctls {
			before[n][k] = l.sysctl(t, n, k)
		}
	}

	sniff := startSniffer(t, l.ns["sw"])

	t.Run("failed set-up is undone", func(t *testing.T) {
		bad := []Config{{vip4, "eth0", mode}, {netip.MustParseAddr("10.77.0.101"), "nosuch0", mode}}
		err := testenv.InNetns(l.ns["n1"], func() error {
			return New(bad, testLogger(t, "n1")).Run(context.Background(), func() { t.Error("ready called") })
		})
		if err == nil || !strings.Contains(err.Error(), "vip 10.77.0.101") || !strings.Contains(err.Error(), "find interface") {
			t.Fatalf("Run = %v, want an error naming vip 10.77.0.101 and the step", err)
		}
		t.Logf("Run returned, as expected: %v", err)
		l.checkClean(t, "n1", before["n1"])
	})

	n1 := startClaim(t, l.ns["n1"], "n1", cfgs)
	n2 := startClaim(t, l.ns["n2"], "n2", cfgs)

	for _, n := range []string{"n1", "n2"} {
		if got := l.sysctl(t, n, "net/ipv4/conf/eth0/arp_ignore"); got != "1" {
			t.Errorf("%s: eth0 arp_ignore = %s while claimed, want 1", n, got)
		}
		if got := l.sysctl(t, n, "net/ipv4/conf/eth0/arp_announce"); got != "2" {
			t.Errorf("%s: eth0 arp_announce = %s while claimed, want 2", n, got)
		}
		t.Logf("%s links while claimed:\n%s", n, l.exec(t, n, "ip", "-br", "addr"))
	}
	t.Logf("n1 nftables while claimed:\n%s", l.exec(t, "n1", "nft", "list", "table", "netdev", nftTable))

	for _, c := range []struct {
		family, vip, vmac string
	}{{"-4", labVIP4, vmac4}, {"-6", labVIP6, vmac6}} {
		t.Run("client reaches both nodes over IPv"+c.family[1:], func(t *testing.T) {
			seg1, seg2 := l.tcpInSegs(t, "n1"), l.tcpInSegs(t, "n2")
			// Port 9 is closed on both nodes: both kernels get the SYN and
			// answer RST, so the client sees "connection refused" at once.
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", l.ns["cl"], "timeout", "3", "bash", "-c",
				"exec 3<>/dev/tcp/"+c.vip+"/9").CombinedOutput()
			t.Logf("client connect to %s port 9 (%v): %s", c.vip, time.Since(t0), strings.TrimSpace(string(out)))
			poll(t, 5*time.Second, func() string {
				neigh := l.exec(t, "cl", "ip", c.family, "neigh", "show", c.vip, "dev", "eth0")
				if !strings.Contains(neigh, "lladdr "+c.vmac) {
					return fmt.Sprintf("client neighbour entry for %s = %q, want lladdr %s", c.vip, neigh, c.vmac)
				}
				return ""
			})
			t.Logf("client: %s", strings.TrimSpace(l.exec(t, "cl", "ip", c.family, "neigh", "show", c.vip, "dev", "eth0")))
			poll(t, 5*time.Second, func() string {
				d1, d2 := l.tcpInSegs(t, "n1")-seg1, l.tcpInSegs(t, "n2")-seg2
				if d1 < 1 || d2 < 1 {
					return fmt.Sprintf("TCP segments received by n1/n2 = %d/%d, want both >= 1", d1, d2)
				}
				return ""
			})
		})
	}

	t.Run("unicast probes to the virtual MAC are answered", func(t *testing.T) {
		l.checkProbes(t, vip4, VirtualMAC(vip4, mode))
		l.checkProbes(t, vip6, VirtualMAC(vip6, mode))
	})

	fdb := l.exec(t, "sw", "bridge", "fdb", "show", "br", "br0")
	t.Logf("eth0 MACs %v; bridge fdb show br br0:\n%s", l.macs, fdb)
	low := strings.ToLower(fdb)
	for _, m := range secret {
		if strings.Contains(low, m) {
			t.Errorf("the bridge learned %s:\n%s", m, fdb)
		}
	}
	for _, n := range []string{"n1", "n2", "cl"} {
		if !strings.Contains(low, l.macs[n]+" dev p") {
			t.Errorf("the bridge did not learn %s's MAC %s (is learning off?)", n, l.macs[n])
		}
	}
	if mode == ModeIGMP {
		// Socket memberships, not static entries: the kernel reported
		// them, so the snooping bridge lists both nodes' ports.
		mdb := l.exec(t, "sw", "bridge", "mdb", "show", "dev", "br0")
		for _, g := range []netip.Addr{GroupOf(vip4), GroupOf(vip6)} {
			for n, port := range map[string]string{"n1": "p1", "n2": "p2"} {
				if !strings.Contains(mdb, " port "+port+" grp "+g.String()+" ") {
					t.Errorf("the bridge's mdb does not list %s's port %s in %s (no report?):\n%s", n, port, g, mdb)
				}
			}
		}
		t.Logf("bridge mdb show dev br0:\n%s", mdb)
	}
	if mode == ModeMulticast || mode == ModeIGMP {
		for _, n := range []string{"n1", "n2"} {
			maddr := l.exec(t, n, "ip", "maddr", "show", "dev", "eth0")
			t.Logf("%s: %s", n, maddr)
			if mode == ModeIGMP && (!strings.Contains(maddr, "link  "+vmac4) || !strings.Contains(maddr, "link  "+vmac6)) {
				t.Errorf("%s: eth0 does not listen to %s and %s", n, vmac4, vmac6)
			}
			rules := l.exec(t, n, "nft", "list", "chain", "netdev", nftTable, "vip0_mcast")
			if strings.Contains(rules, "counter packets 0 ") {
				t.Errorf("%s: no frame to the multicast MAC was marked:\n%s", n, rules)
			}
		}
	}

	for name, rc := range map[string]*runningClaim{"n1": n1, "n2": n2} {
		if err := rc.stop(t); err != nil {
			t.Errorf("%s: Run = %v, want nil", name, err)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		l.checkClean(t, n, before[n])
	}

	sniff.stop()
	sniff.mu.Lock()
	defer sniff.mu.Unlock()
	for _, m := range secret {
		if sniff.sources[m] > 0 {
			t.Errorf("%d frames crossed the switch with source %s", sniff.sources[m], m)
		}
	}
	t.Logf("frames per source MAC seen on the switch: %v", sniff.sources)
	t.Logf("ARP frames seen on the switch (Ethernet source -> ARP sender MAC): %v", sniff.arps)
	replies := 0
	for k, v := range sniff.arps {
		if strings.HasSuffix(k, "-> "+vmac4) {
			replies += v
		}
	}
	if replies == 0 {
		t.Errorf("no ARP frame carried %s in its payload", vmac4)
	}
}

// checkProbes sends, from the client, an ARP request or neighbour
// solicitation addressed to the virtual MAC itself (what a client's
// neighbour-unreachability probe looks like) and expects an answer from each
// node, carrying the virtual MAC in its payload and the node's own MAC as
// Ethernet source.
func (l *lab) checkProbes(t *testing.T, vip netip.Addr, vmac net.HardwareAddr) {
	t.Helper()
	clMAC, _ := net.ParseMAC(l.macs["cl"])
	want := map[string]bool{l.macs["n1"]: true, l.macs["n2"]: true}
	err := testenv.InNetns(l.ns["cl"], func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto, frame := unix.ETH_P_ARP, []byte(nil)
		if vip.Is4() {
			p, err := arp.NewPacket(arp.OperationRequest, clMAC, netip.MustParseAddr("10.77.0.10"), zeroMAC, vip)
			if err != nil {
				return err
			}
			frame, err = arpFrame(p, vmac, clMAC)
			if err != nil {
				return err
			}
		} else {
			proto = unix.ETH_P_IPV6
			frame = nsFrame(t, clMAC, vmac, netip.MustParseAddr("fd77::10"), vip, vip, 255, clMAC)
		}
		c, err := packet.Listen(ifi, packet.Raw, proto, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: vmac}); err != nil {
			return err
		}
		got := map[string]bool{}
		deadline := time.Now().Add(3 * time.Second)
		buf := make([]byte, 2048)
		for len(got) < len(want) {
			if err := c.SetReadDeadline(deadline); err != nil {
				return err
			}
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("answers to a unicast probe for %s from %v, want from %v: %w", vip, got, want, err)
			}
			var f ethernet.Frame
			if f.UnmarshalBinary(buf[:n]) != nil || !bytes.Equal(f.Destination, clMAC) {
				continue
			}
			if vip.Is4() {
				var p arp.Packet
				if p.UnmarshalBinary(f.Payload) == nil && p.Operation == arp.OperationReply && p.SenderIP == vip {
					if !bytes.Equal(p.SenderHardwareAddr, vmac) {
						return fmt.Errorf("ARP reply from %s says %s is at %s", f.Source, vip, p.SenderHardwareAddr)
					}
					got[f.Source.String()] = true
				}
				continue
			}
			if len(f.Payload) < 40 || f.Payload[6] != 58 {
				continue
			}
			m, err := ndp.ParseMessage(f.Payload[40:])
			if na, ok := m.(*ndp.NeighborAdvertisement); err == nil && ok && na.TargetAddress == vip {
				for _, o := range na.Options {
					if lla, ok := o.(*ndp.LinkLayerAddress); ok && !bytes.Equal(lla.Addr, vmac) {
						return fmt.Errorf("NA from %s says %s is at %s", f.Source, vip, lla.Addr)
					}
				}
				got[f.Source.String()] = true
			}
		}
		t.Logf("unicast probe for %s to %s answered by %v", vip, vmac, got)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// checkClean asserts a node is back to its state before the claim.
func (l *lab) checkClean(t *testing.T, role string, sysctls map[string]string) {
	t.Helper()
	links := l.exec(t, role, "ip", "-o", "link", "show")
	for _, line := range strings.Split(links, "\n") {
		if f := strings.Fields(line); len(f) > 1 && isHolderName(strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]) {
			t.Errorf("%s: holder link left: %s", role, line)
		}
	}
	if tables := l.exec(t, role, "nft", "list", "tables"); strings.Contains(tables, nftTable) {
		t.Errorf("%s: nftables table left:\n%s", role, tables)
	}
	if addrs := l.exec(t, role, "ip", "addr", "show"); strings.Contains(addrs, labVIP4+"/") || strings.Contains(addrs, labVIP6+"/") {
		t.Errorf("%s: VIP address left:\n%s", role, addrs)
	}
	if maddr := l.exec(t, role, "ip", "maddr", "show"); strings.Contains(maddr, "03:bf") || strings.Contains(maddr, "03:be") ||
		strings.Contains(maddr, "01:00:5e:7f:") || strings.Contains(maddr, "239.255.") || strings.Contains(maddr, "ff12::6661:726d") {
		t.Errorf("%s: multicast MAC left:\n%s", role, maddr)
	}
	for k, want := range sysctls {
		if got := l.sysctl(t, role, k); got != want {
			t.Errorf("%s: %s = %s after Run, want the original %s", role, k, got, want)
		}
	}
}

func TestCleanupLeftovers(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces", "ip", "nft", "bridge", "bash", "timeout")
	l := newLab(t)
	n := l.ns["n1"]
	// What a crashed agent leaves: holders (one with the same name a new
	// run wants), the table with a muting chain, a static multicast MAC.
	// Plus things Cleanup must leave alone.
	leave := func() {
		testenv.Run(t, "ip", "-n", n, "link", "add", "farmv0", "link", "eth0", "type", "macvlan", "mode", "private")
		testenv.Run(t, "ip", "-n", n, "link", "add", "farmv3", "link", "eth0", "type", "macvlan", "mode", "private")
		l.exec(t, "n1", "nft", "add", "table", "netdev", nftTable)
		l.exec(t, "n1", "nft", "add", "chain", "netdev", nftTable, "vip3_out",
			"{ type filter hook egress device farmv3 priority 0; policy drop; }")
		testenv.Run(t, "ip", "-n", n, "maddr", "add", "03:bf:0a:4d:00:64", "dev", "eth0")
	}
	testenv.Run(t, "ip", "-n", n, "link", "add", "farmvx", "link", "eth0", "type", "macvlan", "mode", "private")
	testenv.Run(t, "ip", "-n", n, "maddr", "add", "03:00:00:00:00:07", "dev", "eth0")

	// A run started over the leftovers removes them first.
	leave()
	rc := startClaim(t, n, "n1", []Config{{netip.MustParseAddr(labVIP4), "eth0", ModeMulticast}})
	if err := rc.stop(t); err != nil {
		t.Fatalf("Run over leftovers = %v", err)
	}
	l.checkClean(t, "n1", nil)

	leave()
	for i := range 2 {
		if err := testenv.InNetns(n, func() error { return Cleanup(context.Background(), testLogger(t, "n1")) }); err != nil {
			t.Fatalf("Cleanup #%d = %v", i+1, err)
		}
	}
	links := l.exec(t, "n1", "ip", "-o", "link", "show")
	if strings.Contains(links, "farmv3") {
		t.Errorf("farmv3 left:\n%s", links)
	}
	if !strings.Contains(links, "farmvx") {
		t.Errorf("farmvx (not a holder name) was removed:\n%s", links)
	}
	if tables := l.exec(t, "n1", "nft", "list", "tables"); strings.Contains(tables, nftTable) {
		t.Errorf("table left:\n%s", tables)
	}
	maddr := l.exec(t, "n1", "ip", "maddr", "show", "dev", "eth0")
	if strings.Contains(maddr, "03:bf:0a:4d:00:64") {
		t.Errorf("our multicast MAC left:\n%s", maddr)
	}
	if !strings.Contains(maddr, "03:00:00:00:00:07") {
		t.Errorf("a foreign multicast MAC was removed:\n%s", maddr)
	}
}
