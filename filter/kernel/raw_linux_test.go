package kernel_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/kernel"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/internal/testenv"
)

// probeRuleset counts, just after conntrack (priority -190, before the
// engine's chain "pre"), the packets from each test client to the VIP's
// port: a packet the raw chain dropped never gets there.
const probeRuleset = `
table ip farmtest_probe {
	counter from_a { }
	counter from_b { }
	chain c {
		type filter hook prerouting priority -190; policy accept;
		ip saddr %s ip daddr %s tcp dport %d counter name "from_a"
		ip saddr %s ip daddr %s tcp dport %d counter name "from_b"
	}
}
`

// TestEngineRawNetns checks the drop before conntrack and the short
// TIME_WAIT: packets of a bucket never owned are dropped before conntrack;
// a flow established in a bucket that is then lost keeps working (the
// bucket is held); the held bucket is released once the flow has ended and
// a dump ran, and its packets are dropped before conntrack from then on;
// this node's VIP flows get the 5 s TIME_WAIT, other flows keep the
// kernel's default.
func TestEngineRawNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "conntrack")
	p := testenv.NewPair(t, "kern")
	const vip, srvAddr, port = "10.95.0.100", "10.95.0.2", 8080
	testenv.AddAddrs(t, p.Srv, "eth0", srvAddr+"/24", vip+"/32")
	// Two client addresses in different buckets: a and b.
	cliA := netip.MustParseAddr("10.95.0.1")
	bA := filter.BucketOf(cliA, 0, filter.AffinityIP)
	var cliB netip.Addr
	for i := 3; i < 250; i++ {
		c := netip.AddrFrom4([4]byte{10, 95, 0, byte(i)})
		if filter.BucketOf(c, 0, filter.AffinityIP) != bA {
			cliB = c
			break
		}
	}
	bB := filter.BucketOf(cliB, 0, filter.AffinityIP)
	testenv.AddAddrs(t, p.Cli, "eth0", cliA.String()+"/24", cliB.String()+"/24")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go testenv.EchoServer(testenv.ListenIn(t, p.Srv, "tcp", fmt.Sprintf("%s:%d", vip, port)))
	go testenv.EchoServer(testenv.ListenIn(t, p.Srv, "tcp", fmt.Sprintf("%s:%d", srvAddr, port)))
	probe := fmt.Sprintf(probeRuleset, cliA, vip, port, cliB, vip, port)
	if _, err := testenv.ExecIn(ctx, p.Srv, "sh", "-c", "nft -f - <<'EOF'\n"+probe+"EOF\n"); err != nil {
		t.Fatal(err)
	}
	probed := func(name string) int {
		t.Helper()
		out := testenv.RunIn(t, p.Srv, "nft", "list", "counter", "ip", "farmtest_probe", name)
		f := strings.Fields(out[strings.Index(out, "packets"):])
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("counter %s: %v in %q", name, err, out)
		}
		return n
	}
	dial := func(src netip.Addr, dst string) (net.Conn, error) {
		var c net.Conn
		err := testenv.InNetns(p.Cli, func() (err error) {
			d := net.Dialer{Timeout: 1500 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err = d.Dial("tcp", dst)
			return err
		})
		return c, err
	}
	vipAddr := fmt.Sprintf("%s:%d", vip, port)
	mustNotConnect := func(src netip.Addr, what string) {
		t.Helper()
		if c, err := dial(src, vipAddr); err == nil {
			c.Close()
			t.Fatalf("%s: connect from %s succeeded", what, src)
		}
	}
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{netip.MustParseAddr(vip)},
		Rules: []filter.Rule{{Proto: filter.ProtoTCP, Ports: mustPorts(t, port), Affinity: filter.AffinityIP}}}
	eng := kernel.New(spec, nil)
	kernel.SetRelease(eng, 200*time.Millisecond, 300*time.Millisecond)
	startEngine(t, ctx, p.Srv, eng)
	waitHeld := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for eng.Stats().Held != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d buckets held after 15 s, want %d", what, eng.Stats().Held, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 1. The node owns only a's bucket; the buckets held since the start
	// go with the first dumps (no flow of this node exists).
	mustApply(t, eng, serve(only(bA, 1, 2), nil))
	waitHeld(0, "after the first plan")
	conn, err := dial(cliA, vipAddr)
	if err != nil {
		t.Fatalf("connect from a (bucket %d, owned): %v", bA, err)
	}
	defer conn.Close()
	if err := testenv.Echo(conn, "a owned"); err != nil {
		t.Fatal(err)
	}
	if probed("from_a") == 0 {
		t.Fatal("the probe after conntrack saw no packet of a's accepted flow")
	}

	// 2. b's bucket was never owned: its SYNs are dropped before conntrack.
	mustNotConnect(cliB, "bucket never owned")
	if n := probed("from_b"); n != 0 {
		t.Fatalf("%d packets of b (bucket %d, never owned) reached conntrack; want all dropped at the raw priority", n, bB)
	}
	if out := testenv.RunIn(t, p.Srv, "conntrack", "-L", "-s", cliB.String()); strings.Contains(out, "dport=") {
		t.Errorf("conntrack entries of b:\n%s", out)
	}

	// 3. a's bucket is lost (to node 2), b's is gained: a's flow keeps
	// working (the bucket is held while the flow lives), b connects.
	mustApply(t, eng, serve(only(bB, 1, 2), nil))
	time.Sleep(time.Second) // several dumps
	if st := eng.Stats(); st.Held != 1 || st.Owned != 1 {
		t.Fatalf("after losing a's bucket with a flow in it: %+v, want 1 owned, 1 held", st)
	}
	if err := testenv.Echo(conn, "a held"); err != nil {
		t.Fatalf("the flow established in a's bucket broke when the bucket was lost: %v", err)
	}
	mustNotConnect(cliA, "a's bucket lost (new flows are the new owner's)")
	connB, err := dial(cliB, vipAddr)
	if err != nil {
		t.Fatalf("connect from b after gaining its bucket: %v", err)
	}
	if err := testenv.Echo(connB, "b owned"); err != nil {
		t.Fatal(err)
	}

	// 4. a's flow ends: its conntrack entry goes to TIME_WAIT with the
	// VIP policy (5 s); once it expires a dump releases a's bucket, and
	// a's packets are dropped before conntrack again.
	sport := conn.LocalAddr().(*net.TCPAddr).Port
	conn.Close()
	time.Sleep(300 * time.Millisecond)
	tw := testenv.RunIn(t, p.Srv, "conntrack", "-L", "-p", "tcp", "-s", cliA.String(), "--sport", strconv.Itoa(sport))
	if state, timeout := ctState(tw); state != "TIME_WAIT" || timeout > 5 {
		t.Errorf("a's closed VIP flow: state %s timeout %d s, want TIME_WAIT <= 5 s:\n%s", state, timeout, tw)
	}
	if eng.Stats().Held != 1 {
		t.Errorf("a's bucket released while its flow was in TIME_WAIT: %+v", eng.Stats())
	}
	waitHeld(0, "after a's last flow ended")
	before := probed("from_a")
	mustNotConnect(cliA, "a's bucket released")
	if n := probed("from_a") - before; n != 0 {
		t.Errorf("%d packets of a reached conntrack after its bucket was released", n)
	}
	if err := testenv.Echo(connB, "b still"); err != nil {
		t.Errorf("b's flow: %v", err)
	}
	connB.Close()

	// 5. A flow to the server's own address (not a VIP) keeps the
	// kernel's TIME_WAIT.
	other, err := dial(cliA, fmt.Sprintf("%s:%d", srvAddr, port))
	if err != nil {
		t.Fatalf("connect to the server's own address: %v", err)
	}
	if err := testenv.Echo(other, "not a vip"); err != nil {
		t.Fatal(err)
	}
	sport = other.LocalAddr().(*net.TCPAddr).Port
	other.Close()
	time.Sleep(300 * time.Millisecond)
	tw = testenv.RunIn(t, p.Srv, "conntrack", "-L", "-p", "tcp", "-s", cliA.String(), "--sport", strconv.Itoa(sport))
	if state, timeout := ctState(tw); state != "TIME_WAIT" || timeout <= 5 {
		t.Errorf("a closed flow to a non-VIP address: state %s timeout %d s, want TIME_WAIT with the default (120 s):\n%s", state, timeout, tw)
	}
}

func mustPorts(t *testing.T, port int) *filter.PortSet {
	t.Helper()
	ps, err := filter.ParsePorts(strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// ctState returns the state and remaining timeout (s) of the first entry
// of `conntrack -L` output ("tcp 6 117 TIME_WAIT src=...").
func ctState(out string) (string, int) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "tcp" {
			n, _ := strconv.Atoi(f[2])
			return f[3], n
		}
	}
	return "", -1
}
