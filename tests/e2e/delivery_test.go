//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/tests/lab"
)

// TestFrameDeliverySelfTest breaks frame delivery to one node the way a
// switch that stopped flooding the virtual MAC would (the switch drops the
// VIP's frames on web3's port) and checks that the farm notices: a warning
// naming web3 in every node's status, and a delivery.low event.
func TestFrameDeliverySelfTest(t *testing.T) {
	// With the suite's engine (make test runs it with both): the kernel
	// engine's counters once read 0 on every node, as soon as its netlink
	// socket's deadline had passed.
	f := startFarm(t, 3, "")
	l := f.l
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Clients web3 does not serve, so the load never waits on the node
	// whose frames go missing: what web1 and web2 see goes on, web3 sees
	// nothing.
	var srcs []netip.Addr
	for _, src := range l.Sources(64) {
		if expectedOwner([]uint8{1, 2, 3}, src, filter.AffinityIP) != 3 {
			srcs = append(srcs, src)
		}
	}
	load := func(d time.Duration) lab.Result {
		var total lab.Result
		end := time.Now().Add(d)
		for time.Now().Before(end) && ctx.Err() == nil {
			r := l.Burst(ctx, srcs, 1, l.VIPURL)
			total.Requests += r.Requests
			total.Failures = append(total.Failures, r.Failures...)
		}
		return total
	}
	warnings := func(i int) []console.Warning {
		st, err := f.status(i)
		if err != nil {
			t.Fatalf("status of web%d: %v", i, err)
		}
		return st.Warnings
	}

	// Healthy farm under load: no warning.
	load(12 * time.Second)
	for i := 1; i <= 3; i++ {
		if w := warnings(i); len(w) != 0 {
			t.Fatalf("web%d warns on a healthy farm: %+v", i, w)
		}
	}

	// The switch stops delivering the VIPs' frames to web3.
	port := l.Node(3).Port
	rule := fmt.Sprintf("add table bridge farmtest_deliver; add chain bridge farmtest_deliver deliver { type filter hook forward priority 0; policy accept; }; "+
		"add rule bridge farmtest_deliver deliver oifname %q ip daddr %s drop; add rule bridge farmtest_deliver deliver oifname %q ip6 daddr %s drop",
		port, l.VIP4, port, l.VIP6)
	if out, err := l.Exec(ctx, l.Switch.NS, "nft", rule); err != nil {
		t.Fatalf("break delivery: %v: %s", err, out)
	}
	broken := time.Now()
	defer func() {
		_, _ = l.Exec(context.Background(), l.Switch.NS, "nft", "delete table bridge farmtest_deliver")
	}()

	// Keep the load on and wait for the warning on every node (bounded).
	loadCtx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan lab.Result, 1)
	go func() {
		var total lab.Result
		for loadCtx.Err() == nil {
			r := l.Burst(loadCtx, srcs, 1, l.VIPURL)
			total.Requests += r.Requests
			total.Failures = append(total.Failures, r.Failures...)
		}
		loaded <- total
	}()
	var caught time.Duration
	var text string
	for time.Since(broken) < 60*time.Second && caught == 0 {
		time.Sleep(250 * time.Millisecond)
		all := true
		for i := 1; i <= 3; i++ {
			found := false
			for _, w := range warnings(i) {
				if w.Node == "web3" && w.Kind == "delivery" {
					found, text = true, w.Text
				}
			}
			all = all && found
		}
		if all {
			caught = time.Since(broken)
		}
	}
	stopLoad()
	res := <-loaded
	if caught == 0 {
		t.Fatalf("no node warned about web3 within 60 s of breaking its frame delivery")
	}
	if len(res.Failures) > 0 {
		t.Errorf("%d of %d requests from clients web1 and web2 serve failed: %v", len(res.Failures), res.Requests, res.Failures[0])
	}
	t.Logf("every node warned about web3 %v after its frames stopped: %s", caught.Round(100*time.Millisecond), text)
	if !strings.Contains(text, "virtual MAC") {
		t.Errorf("the warning does not name the likely cause: %s", text)
	}
	for _, other := range []string{"web1", "web2"} {
		for i := 1; i <= 3; i++ {
			for _, w := range warnings(i) {
				if w.Node == other {
					t.Errorf("web%d also warns about %s: %s", i, other, w.Text)
				}
			}
		}
	}
	var body struct {
		Events []struct {
			Node string `json:"node"`
			What string `json:"what"`
		} `json:"events"`
	}
	if err := f.ckAPI(1, "/api/v1/events?kind=delivery", &body); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range body.Events {
		found = found || (e.Node == "web3" && e.What == "delivery.low")
	}
	if !found {
		t.Errorf("no delivery.low event for web3: %+v", body.Events)
	}
}
