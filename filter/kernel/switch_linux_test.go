package kernel_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/plan"
	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/filter/kernel"
	"github.com/webfarm/farm/filter/rules"
	"github.com/webfarm/farm/internal/testenv"
)

// switching is a plan answering by table t with a planned switch that
// loses the buckets of lose until `until` and gains those of gain from
// `from`.
func switching(t *table.Table, lose, gain []uint16, until, from time.Time) plan.Plan {
	p := serve(t, nil)
	sw := &plan.Switch{Until: until.UnixNano(), From: from.UnixNano()}
	for _, b := range lose {
		sw.Lose.Add(b)
	}
	for _, b := range gain {
		sw.Gain.Add(b)
	}
	p.Switch = sw
	return p
}

// TestEngineSwitchNetns checks the planned switch in the kernel (nft's
// meta time against the switch's times, both families): a bucket being
// lost is answered before its time and not after, a bucket being gained
// not before its time and from it on.
func TestEngineSwitchNetns(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables", "ip", "nft", "conntrack")
	p, vip4, vip6, cli4, cli6 := dualStackPair(t, 92)
	const port = 8080
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tcpPorts, _ := filter.ParsePorts(fmt.Sprint(port))
	spec := rules.Spec{Self: 1, VIPs: []netip.Addr{vip4, vip6}, Rules: []filter.Rule{
		{Proto: filter.ProtoTCP, Ports: tcpPorts, Affinity: filter.AffinityIP},
	}}
	for _, vip := range []netip.Addr{vip4, vip6} {
		go testenv.EchoServer(testenv.ListenIn(t, p.Srv, "tcp", netip.AddrPortFrom(vip, port).String()))
	}
	eng := kernel.New(spec, nil)
	startEngine(t, ctx, p.Srv, eng)

	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	for _, c := range []struct {
		cli, vip netip.Addr
	}{{cli4, vip4}, {cli6, vip6}} {
		b := filter.BucketOf(c.cli, 0, filter.AffinityIP)
		addr := netip.AddrPortFrom(c.vip, port).String()
		dial := func() error {
			conn, err := testenv.DialFrom(p.Cli, addr, 2*time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		}
		// Losing the client's bucket (the table still gives it to us).
		mustApply(t, eng, switching(only(b, 1, 2), []uint16{b}, nil, future, future))
		if st := eng.Stats(); st.Owned != 0 {
			t.Errorf("%s: the bucket being lost is in the owned set: %+v", c.vip, st)
		}
		if err := dial(); err != nil {
			t.Errorf("%s: before the switch time, the bucket being lost is not answered: %v", c.vip, err)
		}
		mustApply(t, eng, switching(only(b, 1, 2), []uint16{b}, nil, past, future))
		testenv.MustTimeOut(t, p.Cli, addr, "after the switch time, the lost bucket")
		// Gaining it (the table gives it to another node).
		mustApply(t, eng, switching(only(b, 2, 1), nil, []uint16{b}, past, future))
		testenv.MustTimeOut(t, p.Cli, addr, "before the switch time plus the margin, the bucket being gained")
		mustApply(t, eng, switching(only(b, 2, 1), nil, []uint16{b}, past, past))
		if err := dial(); err != nil {
			t.Errorf("%s: after the switch time plus the margin, the gained bucket is not answered: %v", c.vip, err)
		}
	}
	out, err := testenv.ExecIn(ctx, p.Srv, "nft", "list", "chain", "ip", rules.OwnedTable, "rule1_planned")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "meta time") {
		t.Errorf("the rule1_planned chain has no meta time rule:\n%s", out)
	}
	t.Logf("nft list chain ip %s rule1_planned:\n%s", rules.OwnedTable, out)
	// No switch: the chain is empty again.
	mustApply(t, eng, serve(fill(1), nil))
	if out, err := testenv.ExecIn(ctx, p.Srv, "nft", "list", "chain", "ip", rules.OwnedTable, "rule1_planned"); err != nil || strings.Contains(out, "meta time") {
		t.Errorf("the rule1_planned chain after a plan without a switch (%v):\n%s", err, out)
	}
}
