package kernel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/kernel"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/internal/testenv"
)

func fill(owner uint8) *table.Table {
	t := new(table.Table)
	for i := range t {
		t[i] = owner
	}
	return t
}

// only returns a table giving bucket b to owner and every other bucket to
// other (not equal to owner).
func only(b uint16, owner, other uint8) *table.Table {
	t := fill(other)
	t[b] = owner
	return t
}

// serve is a plan that answers by table t, with reset set rs (nil: window
// closed).
func serve(t *table.Table, rs *table.Set) plan.Plan {
	p := plan.Plan{Serving: true, Table: t, Reset: rs}
	if rs != nil {
		p.ResetUntil = time.Now().Add(time.Minute)
	}
	return p
}

func mustApply(t *testing.T, e *kernel.Engine, p plan.Plan) {
	t.Helper()
	if err := e.Apply(p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// startEngine runs e in ns until the returned stop is called (or the test
// ends); stop returns Run's error.
func startEngine(t *testing.T, ctx context.Context, ns string, e *kernel.Engine) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- testenv.InNetns(ns, func() error { return e.Run(ctx) }) }()
	var done bool
	var err error
	stop = func() error {
		if !done {
			cancel()
			select {
			case err = <-runErr:
			case <-time.After(15 * time.Second):
				err = errors.New("Run did not return within 15 s of cancel")
			}
			done = true
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	select {
	case <-e.Ready():
	case err := <-runErr:
		done = true
		t.Fatalf("engine Run: %v", err)
	case <-ctx.Done():
		t.Fatal("engine not ready in time")
	}
	return stop
}

// dualStackPair is a Pair numbered n (10.n.0.0/24, fdn::/64): the
// server has .2 and the VIPs .100, the client .1.
func dualStackPair(t *testing.T, n int) (p testenv.Pair, vip4, vip6, cli4, cli6 netip.Addr) {
	t.Helper()
	p = testenv.NewPair(t, "kern")
	testenv.AddAddrs(t, p.Srv, "eth0", fmt.Sprintf("10.%d.0.2/24", n), fmt.Sprintf("10.%d.0.100/32", n), fmt.Sprintf("fd%d::2/64", n), fmt.Sprintf("fd%d::100/128", n))
	testenv.AddAddrs(t, p.Cli, "eth0", fmt.Sprintf("10.%d.0.1/24", n), fmt.Sprintf("fd%d::1/64", n))
	vip4, vip6 = netip.MustParseAddr(fmt.Sprintf("10.%d.0.100", n)), netip.MustParseAddr(fmt.Sprintf("fd%d::100", n))
	cli4, cli6 = netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", n)), netip.MustParseAddr(fmt.Sprintf("fd%d::1", n))
	return p, vip4, vip6, cli4, cli6
}

// TestEngineNetns runs the real data path between two namespaces joined by
// a veth, dual-stack, TCP and UDP: the engine installs its tables on the
// server side. Before any plan nothing connects; owning every bucket a
// client connects; owning only the client's bucket (as filter.BucketOf
// computes it) it connects, owning all but that one it does not; owning
// none, new connects time out while the established connection keeps
// working; when Run ends, everything it installed is gone.
func TestEngineNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "conntrack")
	p, vip4, vip6, cli4, cli6 := dualStackPair(t, 91)
	const port, udpPort = 8080, 5353
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	tcpPorts, _ := filter.ParsePorts(fmt.Sprint(port))
	udpPorts, _ := filter.ParsePorts(fmt.Sprint(udpPort))
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{vip4, vip6}, Rules: []filter.Rule{
		{Proto: filter.ProtoTCP, Ports: tcpPorts, Affinity: filter.AffinityIP},
		{Proto: filter.ProtoUDP, Ports: udpPorts, Affinity: filter.AffinityIPPort},
	}}
	for _, vip := range []netip.Addr{vip4, vip6} {
		go testenv.EchoServer(testenv.ListenIn(t, p.Srv, "tcp", netip.AddrPortFrom(vip, port).String()))
		var pc net.PacketConn
		if err := testenv.InNetns(p.Srv, func() (err error) {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(vip, udpPort).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() { // UDP echo
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
	addr4, addr6 := netip.AddrPortFrom(vip4, port).String(), netip.AddrPortFrom(vip6, port).String()

	eng := kernel.New(spec, nil)
	if err := eng.Apply(serve(fill(1), nil)); err == nil {
		t.Error("Apply before Run succeeded")
	}
	stop := startEngine(t, ctx, p.Srv, eng)
	for _, want := range []string{"table ip farm_guard", "table ip farm_owned", "table ip6 farm_guard", "table ip6 farm_owned"} {
		if !strings.Contains(testenv.RunIn(t, p.Srv, "nft", "list", "tables"), want) {
			t.Fatalf("engine ready without %q:\n%s", want, testenv.RunIn(t, p.Srv, "nft", "list", "tables"))
		}
	}
	if out, err := testenv.ExecIn(ctx, p.Srv, "nft", "list", "ruleset"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("nft list ruleset after Ready (bucket sets empty until Apply):\n%s", out)
	}

	// 0. No plan yet: nobody is served.
	testenv.MustTimeOut(t, p.Cli, addr4, "before the first Apply")

	// 1. This node owns every bucket: connects succeed, in both families.
	mustApply(t, eng, serve(fill(1), nil))
	if st := eng.Stats(); st.Owned != table.Buckets || st.Reset != 0 || st.Applies != 1 {
		t.Errorf("Stats after owning everything: %+v", st)
	}
	conn, err := testenv.DialFrom(p.Cli, addr4, 3*time.Second)
	if err != nil {
		t.Fatalf("connect while owning every bucket: %v", err)
	}
	defer conn.Close()
	if err := testenv.Echo(conn, "first"); err != nil {
		t.Fatalf("echo on the accepted flow: %v", err)
	}
	conn6, err := testenv.DialFrom(p.Cli, addr6, 3*time.Second)
	if err != nil {
		t.Fatalf("IPv6 connect while owning every bucket: %v", err)
	}
	defer conn6.Close()
	if err := testenv.Echo(conn6, "first v6"); err != nil {
		t.Fatalf("echo on the accepted IPv6 flow: %v", err)
	}
	out, err := testenv.ExecIn(ctx, p.Srv, "conntrack", "-L", "-p", "tcp", "--dport", fmt.Sprint(port))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("mark=%d", filter.Mark(1)); strings.Count(out, want) != 2 {
		t.Errorf("conntrack entries lack %s:\n%s", want, out)
	}
	// The new flows were counted per VIP, before the verdict (the SYN before
	// the first Apply too), for the frame-delivery self-test.
	// The socket still has the deadline of the last Apply; the counters are
	// read every 2 s for as long as the agent runs, long after it passed.
	if err := kernel.ExpireSocketDeadline(eng); err != nil {
		t.Fatal(err)
	}
	if seen := eng.Seen(); len(seen) != 2 || seen[0] < 1 || seen[1] < 1 {
		t.Errorf("Seen() = %v, want at least one new flow counted for each VIP", seen)
	} else {
		t.Logf("new flows seen per VIP: %v", seen)
	}

	// UDP with ip-port affinity: one datagram from a fixed source port.
	udpEcho := func(vip netip.Addr, srcPort uint16) error {
		return testenv.InNetns(p.Cli, func() error {
			src := cli4
			if vip.Is6() {
				src = cli6
			}
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, srcPort)),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(vip, udpPort)))
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(1500 * time.Millisecond)); err != nil {
				return err
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			_, err = c.Read(make([]byte, 16))
			return err
		})
	}
	for i, vip := range []netip.Addr{vip4, vip6} {
		if err := udpEcho(vip, uint16(40000+i)); err != nil {
			t.Errorf("UDP to %s while owning every bucket: %v", vip, err)
		}
	}

	// 2. Only the client's bucket, as Go computes it, is ours: the kernel
	// agrees (TCP by ip, UDP by ip-port, both families).
	dialOK := func(addr string) func(uint16) error {
		return func(uint16) error {
			c, err := testenv.DialFrom(p.Cli, addr, 3*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}
	}
	for i, c := range []struct {
		name   string
		bucket func(srcPort uint16) uint16
		check  func(srcPort uint16) error
	}{
		{"tcp v4", func(uint16) uint16 { return filter.BucketOf(cli4, 0, filter.AffinityIP) }, dialOK(addr4)},
		{"tcp v6", func(uint16) uint16 { return filter.BucketOf(cli6, 0, filter.AffinityIP) }, dialOK(addr6)},
		{"udp v4", func(sp uint16) uint16 { return filter.BucketOf(cli4, sp, filter.AffinityIPPort) }, func(sp uint16) error { return udpEcho(vip4, sp) }},
		{"udp v6", func(sp uint16) uint16 { return filter.BucketOf(cli6, sp, filter.AffinityIPPort) }, func(sp uint16) error { return udpEcho(vip6, sp) }},
	} {
		// A fresh source port for each check: a UDP flow accepted before
		// is established and passes whatever the plan says.
		sp := uint16(41000 + 2*i)
		b := c.bucket(sp)
		mustApply(t, eng, serve(only(b, 1, 2), nil))
		if err := c.check(sp); err != nil {
			t.Errorf("%s: owning only bucket %d (the client's): %v", c.name, b, err)
		}
		sp++
		b = c.bucket(sp)
		mustApply(t, eng, serve(only(b, 2, 1), nil))
		if err := c.check(sp); err == nil {
			t.Errorf("%s: owning every bucket but %d (the client's): the flow was accepted", c.name, b)
		}
	}

	// 3. Another node owns every bucket: new flows time out, ours survive.
	mustApply(t, eng, serve(fill(2), nil))
	testenv.MustTimeOut(t, p.Cli, addr4, "owning no bucket")
	testenv.MustTimeOut(t, p.Cli, addr6, "owning no bucket (v6)")
	if err := testenv.Echo(conn, "still mine"); err != nil {
		t.Errorf("the established flow broke on rebalance: %v", err)
	}
	if err := testenv.Echo(conn6, "still mine v6"); err != nil {
		t.Errorf("the established IPv6 flow broke on rebalance: %v", err)
	}

	// 4. A plan that serves nobody.
	mustApply(t, eng, plan.Plan{Table: &table.Table{}})
	testenv.MustTimeOut(t, p.Cli, addr4, "not serving")
	if st := eng.Stats(); st.Owned != 0 {
		t.Errorf("Stats when serving nobody: %+v", st)
	}

	// 5. Run ends: everything it installed is gone, and Apply fails.
	mustApply(t, eng, serve(fill(1), nil))
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if out := testenv.RunIn(t, p.Srv, "nft", "list", "tables"); strings.Contains(out, "farm") {
		t.Errorf("tables left after Run returned:\n%s", out)
	}
	if err := eng.Apply(serve(fill(1), nil)); err == nil {
		t.Error("Apply after Run succeeded")
	}
}

// TestEngineFullPlan applies the largest plans (every bucket owned and in
// the reset set, both families: one transaction of 16384 elements) and
// checks the kernel holds all of them, then a small one.
func TestEngineFullPlan(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft")
	ns := testenv.NewNetns(t, "kern-full")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ports, _ := filter.ParsePorts("80,443,8000-8100,60000-65535")
	spec := rules.Spec{Self: 7, VIPs: []netip.Addr{netip.MustParseAddr("10.92.0.100"), netip.MustParseAddr("fd92::100")},
		Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: ports}}}
	eng := kernel.New(spec, nil)
	startEngine(t, ctx, ns, eng)
	all := new(table.Set)
	for b := range table.Buckets {
		all.Add(uint16(b))
	}
	count := func(family nftables.TableFamily, set string) int {
		t.Helper()
		var n int
		err := testenv.InNetns(ns, func() error {
			c, err := nftables.New()
			if err != nil {
				return err
			}
			s, err := c.GetSetByName(&nftables.Table{Name: rules.OwnedTable, Family: family}, set)
			if err != nil {
				return err
			}
			el, err := c.GetSetElements(s)
			n = len(el)
			return err
		})
		if err != nil {
			t.Fatalf("list set %s: %v", set, err)
		}
		return n
	}
	for round := range 2 { // the second round replaces a full set with a full set
		start := time.Now()
		mustApply(t, eng, serve(fill(7), all))
		t.Logf("round %d: applying 2 x 2 x 4096 buckets took %v", round+1, time.Since(start).Round(time.Microsecond))
		for _, f := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
			for _, s := range []string{"owned", "takeover"} {
				if n := count(f, s); n != table.Buckets {
					t.Errorf("round %d: family %d set %s holds %d elements, want %d", round+1, f, s, n, table.Buckets)
				}
			}
		}
	}
	third := new(table.Table) // a 3-node farm's share, dual-stack
	for b := range third {
		third[b] = []uint8{7, 1, 2}[b%3]
	}
	start := time.Now()
	mustApply(t, eng, serve(third, nil))
	t.Logf("applying a third of the buckets (2 x 1366, window closed) took %v", time.Since(start).Round(time.Microsecond))
	mustApply(t, eng, serve(only(5, 7, 1), nil))
	out, err := testenv.ExecIn(ctx, ns, "nft", "list", "set", "ip6", rules.OwnedTable, "owned")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "elements = { 0x00000005 }") { // host order, as nft shows ct marks
		t.Errorf("after a one-bucket plan, the owned set is not just bucket 5:\n%s", out)
	}
	if out, err := testenv.ExecIn(ctx, ns, "nft", "list", "set", "ip", rules.OwnedTable, "takeover"); err != nil || strings.Contains(out, "elements") {
		t.Errorf("after closing the reset window, the reset set is not empty (%v):\n%s", err, out)
	}
}

// TestEngineResetNetns checks the takeover reset on the real data path: a
// client's established flow is orphaned on the server side (the server's
// socket vanishes without a word reaching the client, and the flow's
// conntrack entry is deleted: exactly what the new owner of a dead node's
// bucket sees). The client's next segment is answered with a reset only
// while the reset window is open AND the client's bucket is in the plan's
// Reset set AND this node owns it; otherwise it is dropped. After the
// reset the client reconnects at once.
func TestEngineResetNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "conntrack")
	p := testenv.NewPair(t, "kern")
	testenv.AddAddrs(t, p.Srv, "eth0", "10.93.0.2/24", "10.93.0.100/32")
	testenv.AddAddrs(t, p.Cli, "eth0", "10.93.0.1/24")
	const vip, client, port = "10.93.0.100", "10.93.0.1", 8080
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	web, _ := filter.ParsePorts(fmt.Sprint(port))
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr(vip)},
		Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIP}}}

	// The service keeps listening (the new owner runs it too); accepted
	// connections are handed to the test, which alone uses them.
	ln := testenv.ListenIn(t, p.Srv, "tcp", fmt.Sprintf("%s:%d", vip, port))
	accepted := testenv.Accepted(t, ln)
	eng := kernel.New(spec, nil)
	startEngine(t, ctx, p.Srv, eng)

	addr := fmt.Sprintf("%s:%d", vip, port)
	dial := func() net.Conn {
		t.Helper()
		c, err := testenv.DialFrom(p.Cli, addr, 3*time.Second)
		if err != nil {
			t.Fatalf("connect to the VIP: %v", err)
		}
		return c
	}
	bucket := filter.BucketOf(netip.MustParseAddr(client), 0, filter.AffinityIP)
	mine, others := new(table.Set), new(table.Set)
	for b := range table.Buckets {
		if uint16(b) != bucket {
			others.Add(uint16(b))
		}
	}
	mine.Add(bucket)
	tests := []struct {
		name      string
		owner     uint8
		takeover  *table.Set // nil: window closed
		wantReset bool
	}{
		{"window open, bucket not taken over", 1, others, false},
		{"window open, bucket taken over", 1, mine, true},
		{"window open, taken over but another node owns it", 2, mine, false},
		{"window closed", 1, nil, false},
	}
	for _, tt := range tests {
		mustApply(t, eng, serve(fill(1), nil))
		c := dial()
		testenv.Orphan(t, p.Srv, c, accepted)
		mustApply(t, eng, serve(fill(tt.owner), tt.takeover))
		wait := 1500 * time.Millisecond
		if tt.wantReset {
			wait = 5 * time.Second
		}
		err := testenv.Probe(t, c, wait)
		testenv.Abort(c)
		var ne net.Error
		switch {
		case tt.wantReset && !errors.Is(err, syscall.ECONNRESET):
			t.Errorf("%s: client got %v, want a reset", tt.name, err)
		case !tt.wantReset && !(errors.As(err, &ne) && ne.Timeout()):
			t.Errorf("%s: client got %v, want a timeout (nothing answers)", tt.name, err)
		default:
			t.Logf("%s: client got %v", tt.name, err)
		}
		mustApply(t, eng, serve(fill(1), nil))
		if tt.wantReset { // the client recovers at once: a new connection works
			again := dial()
			select {
			case s := <-accepted:
				s.Close()
			case <-time.After(3 * time.Second):
				t.Errorf("%s: reconnect not accepted", tt.name)
			}
			again.Close()
		}
	}
}

// childEnv names the namespace TestEngineChild serves in; set only when
// TestEngineFailClosed runs the test binary as the child.
const childEnv = "FARMTEST_KERNEL_ENGINE_NETNS"

// failClosedSpec is the engine of TestEngineFailClosed and its child.
func failClosedSpec() rules.Spec {
	web, _ := filter.ParsePorts("8080")
	return rules.Spec{Self: 3, VIPs: []netip.Addr{netip.MustParseAddr("10.94.0.100")},
		Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: web, Affinity: filter.AffinityIP}}}
}

// TestEngineChild is not a test of its own: TestEngineFailClosed runs the
// test binary with it as a stand-in agent, which installs the engine in a
// namespace, serves every bucket, says READY and waits to be killed.
func TestEngineChild(t *testing.T) {
	ns := os.Getenv(childEnv)
	if ns == "" {
		t.Skip("run by TestEngineFailClosed only")
	}
	eng := kernel.New(failClosedSpec(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // bounded even if nobody kills it
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- testenv.InNetns(ns, func() error { return eng.Run(ctx) }) }()
	select {
	case <-eng.Ready():
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	}
	if err := eng.Apply(serve(fill(3), nil)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	fmt.Println("READY")
	<-ctx.Done()
	<-runErr
}

// TestEngineFailClosed kills a running engine the hard way: the engine
// runs in a child process (this test binary), which is SIGKILLed with an
// established connection open. The kernel must have removed the owned
// table with the child's socket, so a new SYN is not answered (no new
// conntrack entry either), while the established flow still works through
// the guard table, which stays until a restart or `farm cleanup`.
func TestEngineFailClosed(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "conntrack")
	p := testenv.NewPair(t, "kern")
	testenv.AddAddrs(t, p.Srv, "eth0", "10.94.0.2/24", "10.94.0.100/32")
	testenv.AddAddrs(t, p.Cli, "eth0", "10.94.0.1/24")
	const addr = "10.94.0.100:8080"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go testenv.EchoServer(testenv.ListenIn(t, p.Srv, "tcp", addr))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.CommandContext(ctx, exe, "-test.run=^TestEngineChild$", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"="+p.Srv)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ready, exited := make(chan struct{}, 1), make(chan struct{})
	go func() {
		// Read to the end (the child never blocks on a full pipe), then
		// reap it: Wait closes the pipe.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "READY" {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
		_ = child.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = child.Process.Kill()
		<-exited
		// The guard the child left behind: what `farm cleanup` does.
		if err := testenv.InNetns(p.Srv, func() error { return rules.Cleanup(context.Background()) }); err != nil {
			t.Errorf("rules.Cleanup: %v", err)
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("the child engine exited before it got ready: %v", child.ProcessState)
	case <-time.After(20 * time.Second):
		t.Fatal("the child engine did not get ready in 20 s")
	}

	conn, err := testenv.DialFrom(p.Cli, addr, 3*time.Second)
	if err != nil {
		t.Fatalf("connect through the child's engine: %v", err)
	}
	defer conn.Close()
	if err := testenv.Echo(conn, "before"); err != nil {
		t.Fatal(err)
	}
	if out := testenv.RunIn(t, p.Srv, "nft", "list", "tables"); !strings.Contains(out, "table ip farm_owned") || !strings.Contains(out, "table ip farm_guard") {
		t.Fatalf("the child's tables are not there:\n%s", out)
	}
	// Another agent cannot take over the live one's table.
	second := kernel.New(failClosedSpec(), nil)
	err = testenv.InNetns(p.Srv, func() error {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return second.Run(c)
	})
	if err == nil || !strings.Contains(err.Error(), "another farm agent") {
		t.Errorf("a second engine next to a live one: Run = %v, want an error naming another agent", err)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed child did not exit")
	}
	// The kernel drops the table while releasing the socket, before the
	// process is reaped: no waiting needed.
	out := testenv.RunIn(t, p.Srv, "nft", "list", "tables")
	if strings.Contains(out, "farm_owned") {
		t.Fatalf("the owned table outlived its process:\n%s", out)
	}
	if !strings.Contains(out, "table ip farm_guard") {
		t.Fatalf("the guard table is gone with the process (fail open):\n%s", out)
	}
	t.Logf("tables after SIGKILL:\n%s", out)
	testenv.MustTimeOut(t, p.Cli, addr, "after the agent was killed")
	if err := testenv.Echo(conn, "after"); err != nil {
		t.Errorf("the established flow broke when the agent was killed: %v", err)
	}
	ct, err := testenv.ExecIn(ctx, p.Srv, "conntrack", "-L", "-p", "tcp", "--dport", "8080")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(ct, "dport=8080"); n != 1 {
		t.Errorf("conntrack after the kill: %d flows, want only the established one:\n%s", n, ct)
	}
}
