package kernel_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/kernel"
	"github.com/webfarm/farm/internal/testenv"
)

// stampTag marks a conntrack mark as stamped by the test: bucket 0 would
// otherwise look like no mark at all.
const stampTag = 0x10000

// Destination ports of the comparison: the engine's own expressions
// (kernel.BucketExprs) stamp flows to enginePort+i, the nft syntax
// filter.BucketOf documents stamps flows to cliPort+i, for the affinity
// kinds[i].
const (
	enginePort = 9001
	cliPort    = 9011
)

var kinds = []filter.Affinity{filter.AffinityIP, filter.AffinityIPPort, filter.AffinityNetwork}

// TestBucketKernelMatchesGo sends TCP and UDP flows from many IPv4 and IPv6
// client addresses (several /24 and /64 networks) through a namespace
// whose prerouting stamps each new flow's conntrack mark with the bucket
// the kernel computed, and checks every one against filter.BucketOf:
// once with the engine's expressions, once with the nft rules BucketOf's
// doc gives.
func TestBucketKernelMatchesGo(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables, conntrack", "ip", "nft")
	p := testenv.NewPair(t, "kern")
	testenv.AddAddrs(t, p.Srv, "eth0", "10.95.255.254/16", "fd95:0:0:ff::1/48")
	var clients []netip.Addr
	for _, n := range []int{0, 1, 77, 200} {
		for _, h := range []int{1, 2, 33, 99, 170, 254} {
			clients = append(clients, netip.AddrFrom4([4]byte{10, 95, byte(n), byte(h)}))
		}
	}
	for _, n := range []string{"0", "1", "beef", "fffe"} {
		for _, iid := range []string{"1", "2", "abcd:1234:5678:9abc", "ffff:0:0:1"} {
			clients = append(clients, netip.MustParseAddr("fd95:0:0:"+n+":"+strings.Repeat("0:", 3-strings.Count(iid, ":"))+iid))
		}
	}
	var batch strings.Builder
	for _, c := range clients {
		if c.Is4() {
			fmt.Fprintf(&batch, "addr add %s/16 dev eth0\n", c)
		} else {
			fmt.Fprintf(&batch, "addr add %s/48 dev eth0 nodad\n", c)
		}
	}
	bf := filepath.Join(t.TempDir(), "addrs")
	if err := os.WriteFile(bf, []byte(batch.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "ip", "-n", p.Cli, "-batch", bf)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The stamping rules, in prerouting after conntrack.
	if err := testenv.InNetns(p.Srv, func() error { return stampWithEngineExprs() }); err != nil {
		t.Fatalf("install the engine-expression stamps: %v", err)
	}
	script := filepath.Join(t.TempDir(), "stamp.nft")
	if err := os.WriteFile(script, []byte(cliStamps()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.ExecIn(ctx, p.Srv, "nft", "-f", script); err != nil {
		t.Fatalf("install the nft-syntax stamps: %v: %s", err, out)
	}
	if out, err := testenv.ExecIn(ctx, p.Srv, "nft", "list", "ruleset"); err == nil {
		t.Logf("stamping rules:\n%s", out)
	}

	var dports []int
	for i := range kinds {
		dports = append(dports, enginePort+i, cliPort+i)
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(testenv.ListenIn(t, p.Srv, "tcp", fmt.Sprintf("[::]:%d", enginePort+i)))
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(testenv.ListenIn(t, p.Srv, "tcp", fmt.Sprintf("[::]:%d", cliPort+i)))
	}

	// The flows: from every client to every port, TCP and UDP.
	type flow struct {
		proto uint8
		src   netip.AddrPort
		dport uint16
	}
	srvAddr := map[bool]netip.Addr{false: netip.MustParseAddr("10.95.255.254"), true: netip.MustParseAddr("fd95:0:0:ff::1")}
	var flows []flow
	err := testenv.InNetns(p.Cli, func() error {
		for _, c := range clients {
			for _, dp := range dports {
				dst := netip.AddrPortFrom(srvAddr[c.Is6()], uint16(dp))
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(c, 0)), Timeout: 3 * time.Second}
				tc, err := d.Dial("tcp", dst.String())
				if err != nil {
					return fmt.Errorf("tcp %s -> %s: %w", c, dst, err)
				}
				flows = append(flows, flow{filter.ProtoTCP, tc.LocalAddr().(*net.TCPAddr).AddrPort(), uint16(dp)})
				tc.Close()
				uc, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c, 0)), net.UDPAddrFromAddrPort(dst))
				if err != nil {
					return fmt.Errorf("udp %s -> %s: %w", c, dst, err)
				}
				if _, err := uc.Write([]byte("x")); err != nil {
					uc.Close()
					return fmt.Errorf("udp %s -> %s: %w", c, dst, err)
				}
				flows = append(flows, flow{filter.ProtoUDP, uc.LocalAddr().(*net.UDPAddr).AddrPort(), uint16(dp)})
				uc.Close()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// What the kernel stamped, polled until every flow has its entry (a
	// UDP datagram may wait for neighbour resolution).
	type key struct {
		proto uint8
		src   netip.AddrPort
		dport uint16
	}
	var marks map[key]uint32
	deadline := time.Now().Add(10 * time.Second)
	for {
		marks = map[key]uint32{}
		err := testenv.InNetns(p.Srv, func() error {
			c, err := conntrack.Dial(nil)
			if err != nil {
				return err
			}
			defer c.Close()
			fs, err := c.Dump(nil)
			for _, f := range fs {
				o := f.TupleOrig
				marks[key{o.Proto.Protocol, netip.AddrPortFrom(o.IP.SourceAddress, o.Proto.SourcePort), o.Proto.DestinationPort}] = f.Mark
			}
			return err
		})
		if err != nil {
			t.Fatalf("dump conntrack: %v", err)
		}
		missing := 0
		for _, f := range flows {
			if _, ok := marks[key(f)]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d flows have no conntrack entry", missing, len(flows))
		}
		time.Sleep(50 * time.Millisecond)
	}

	type tally struct{ flows, equal int }
	results := map[string]*tally{}
	var samples []string
	for _, f := range flows {
		i := int(f.dport - enginePort)
		by := "engine exprs"
		if f.dport >= cliPort {
			i, by = int(f.dport-cliPort), "nft syntax"
		}
		aff := kinds[i]
		fam := "IPv4"
		if f.src.Addr().Is6() {
			fam = "IPv6"
		}
		name := fmt.Sprintf("%s %-7s %-4s (%s)", fam, aff, filter.ProtoName(f.proto), by)
		r := results[name]
		if r == nil {
			r = &tally{}
			results[name] = r
		}
		r.flows++
		want := filter.BucketOf(f.src.Addr(), f.src.Port(), aff)
		got := marks[key(f)]
		if got == stampTag|uint32(want) {
			r.equal++
			if len(samples) < 12 && f.proto == filter.ProtoTCP && by == "engine exprs" && (f.src.Port()%5 == 0) {
				samples = append(samples, fmt.Sprintf("%-28s %-7s kernel %4d  Go %4d", f.src, aff, got&^stampTag, want))
			}
			continue
		}
		t.Errorf("%s from %s: kernel stamped %#x, Go computes bucket %d (%#x)", name, f.src, got, want, stampTag|uint32(want))
	}
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	var report strings.Builder
	for _, n := range names {
		fmt.Fprintf(&report, "  %s: %d flows, kernel == Go for %d\n", n, results[n].flows, results[n].equal)
	}
	t.Logf("kernel vs Go buckets (%d flows):\n%s  samples:\n    %s", len(flows), report.String(), strings.Join(samples, "\n    "))
}

// stampWithEngineExprs installs, in the current namespace, a table that
// stamps every new flow to enginePort+i with the bucket the engine's
// expressions compute for kinds[i], tagged with stampTag.
func stampWithEngineExprs() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	for _, v6 := range []bool{false, true} {
		fam := nftables.TableFamilyIPv4
		if v6 {
			fam = nftables.TableFamilyIPv6
		}
		tb := c.AddTable(&nftables.Table{Name: "farmtest_stamp_engine", Family: fam})
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "pre", Table: tb, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-150), Policy: &accept})
		for i, aff := range kinds {
			ex := []expr.Any{
				&expr.Ct{Key: expr.CtKeySTATE, Register: unix.NFT_REG_1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitNEW)},
				&expr.Payload{DestRegister: unix.NFT_REG_1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: binary.BigEndian.AppendUint16(nil, uint16(enginePort+i))},
			}
			ex = append(ex, kernel.BucketExprs(v6, aff)...)
			ex = append(ex,
				&expr.Bitwise{SourceRegister: unix.NFT_REG_1, DestRegister: unix.NFT_REG_1, Len: 4,
					Mask: binary.NativeEndian.AppendUint32(nil, 0xffffffff), Xor: binary.NativeEndian.AppendUint32(nil, stampTag)},
				&expr.Ct{Key: expr.CtKeyMARK, Register: unix.NFT_REG_1, SourceRegister: true},
			)
			c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: ex})
		}
	}
	return c.Flush()
}

// cliStamps is the nft script stamping flows to cliPort+i with the nft
// expressions filter.BucketOf documents for kinds[i].
func cliStamps() string {
	var b strings.Builder
	for _, f := range []struct{ family, saddr, net string }{{"ip", "ip saddr", "@nh,96,24"}, {"ip6", "ip6 saddr", "@nh,64,64"}} {
		fmt.Fprintf(&b, "table %s farmtest_stamp_cli {\n\tchain pre {\n\t\ttype filter hook prerouting priority -150; policy accept;\n", f.family)
		for _, proto := range []string{"tcp", "udp"} {
			for i, key := range []string{f.saddr, f.saddr + " . " + proto + " sport", f.net} {
				fmt.Fprintf(&b, "\t\tct state new %s dport %d ct mark set jhash %s mod 4096 seed 0x%08x offset %d\n",
					proto, cliPort+i, key, filter.BucketSeed, stampTag)
			}
		}
		b.WriteString("\t}\n}\n")
	}
	return b.String()
}
