//go:build linux

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/webfarm/farm/filter"
	"github.com/webfarm/farm/tests/lab"
)

// cutGossip drops node i's gossip (serf, port 7946) in both directions with
// an nft table of the test's own, and optionally its ICMP echo to the
// witness; clients still reach the node. It returns the heal function.
func (f *farm) cutGossip(i int, witness string) func() {
	f.t.Helper()
	rules := `table inet labcut {
  chain cutin { type filter hook input priority 0; policy accept;
    udp dport 7946 drop
    tcp dport 7946 drop
  }
  chain cutout { type filter hook output priority 0; policy accept;
    udp dport 7946 drop
    tcp dport 7946 drop
`
	if witness != "" {
		rules += fmt.Sprintf("    ip daddr %s icmp type echo-request drop\n", witness)
	}
	rules += "  }\n}\n"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns := f.l.Node(i).NS
	if out, err := f.l.Exec(ctx, ns, "sh", "-c", "printf '%s' \"$0\" | nft -f -", rules); err != nil {
		f.t.Fatalf("cut node %d: %v: %s", i, err, out)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if out, err := f.l.Exec(ctx, ns, "nft", "delete", "table", "inet", "labcut"); err != nil {
			f.t.Errorf("heal node %d: %v: %s", i, err, out)
		}
	}
}

// waitStatus polls node i's status until cond holds, and returns how long
// that took.
func (f *farm) waitStatus(i int, d time.Duration, what string, cond func(st statusView) error) time.Duration {
	f.t.Helper()
	start := time.Now()
	err := lab.Poll(context.Background(), d, func() error {
		st, err := f.status(i)
		if err != nil {
			return err
		}
		return cond(newStatusView(st))
	})
	if err != nil {
		f.t.Fatalf("node %d: %s: %v", i, what, err)
	}
	return time.Since(start)
}

// TestPartition cuts web3's gossip off while clients still reach it: web3
// must stop serving (no majority), web1 and web2 must own every bucket, no
// SYN may be answered twice, and after healing web3 rejoins.
func TestPartition(t *testing.T) {
	f := startFarm(t, 3, "")
	cut := time.Now()
	heal := f.cutGossip(3, "")
	healed := false
	defer func() {
		if !healed {
			heal()
		}
	}()
	stopped := f.waitStatus(3, 10*time.Second, "web3 loses quorum", func(st statusView) error {
		if st.Quorum {
			return fmt.Errorf("web3 still has quorum: %v", st)
		}
		return nil
	})
	var tookOver time.Duration
	f.waitStatus(1, 10*time.Second, "web1 and web2 own every bucket", func(st statusView) error {
		if st.Buckets["web1"]+st.Buckets["web2"] != 4096 || !st.Quorum {
			return fmt.Errorf("not yet: %v", st)
		}
		tookOver = time.Since(cut)
		return nil
	})
	t.Logf("partition timeline: web3 stopped serving %d ms after the cut; web1+web2 owned all buckets %d ms after it",
		(stopped + 0).Milliseconds(), tookOver.Milliseconds())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	capt, err := f.l.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := f.l.Burst(ctx, f.l.Sources(64), 2, f.l.VIPURL)
	_ = capt.Sync(ctx)
	rep, _ := capt.Stop()
	t.Logf("during the partition:\n%s", res.Table())
	if len(rep.Doubles) > 0 {
		t.Errorf("%d SYNs answered twice during the partition, first %+v", len(rep.Doubles), rep.Doubles[0])
	}
	if res.PerNode["web3"] > 0 {
		t.Errorf("web3 answered %d new connections without quorum", res.PerNode["web3"])
	}
	if len(res.Failures) > 0 {
		t.Errorf("%d of %d requests failed during the partition, first %+v", len(res.Failures), res.Requests, res.Failures[0])
	}
	for src, nodes := range res.PerSource {
		want := nodeName(expectedOwner([]uint8{1, 2}, src, filter.AffinityIP))
		for n := range nodes {
			if n != want {
				t.Errorf("source %s answered by %s, want %s", src, n, want)
			}
		}
	}

	heal()
	healed = true
	start := time.Now()
	f.waitUp(3, 60*time.Second)
	t.Logf("healed: web3 back with its share after %d ms", time.Since(start).Milliseconds())
	f.distribution([]uint8{1, 2, 3}, 2)
}

// TestWitness: in a 2-node farm every split is even; the witness (here the
// client's own address, answering ICMP) decides. web2 loses both web1 and the
// witness: it stops; web1 still reaches the witness: it serves everyone.
func TestWitness(t *testing.T) {
	f := startFarm(t, 2, `
[gossip]
witness = "10.213.0.200"
`)
	heal := f.cutGossip(2, "10.213.0.200")
	defer heal()
	lost := f.waitStatus(2, 15*time.Second, "web2 loses quorum", func(st statusView) error {
		if st.Quorum {
			return fmt.Errorf("web2 still has quorum: %v", st)
		}
		return nil
	})
	f.waitStatus(1, 15*time.Second, "web1 owns every bucket with quorum", func(st statusView) error {
		if st.Buckets["web1"] != 4096 || !st.Quorum {
			return fmt.Errorf("not yet: %v", st)
		}
		return nil
	})
	t.Logf("web2 (cut off from web1 and the witness) stopped serving after %d ms", lost.Milliseconds())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := f.l.Burst(ctx, f.l.Sources(32), 2, f.l.VIPURL)
	t.Logf("during the split:\n%s", res.Table())
	if res.PerNode["web2"] > 0 || len(res.Failures) > 0 {
		t.Errorf("want every request served by web1: web2 answered %d, %d failed", res.PerNode["web2"], len(res.Failures))
	}
}

// TestRestartInsidePartition restarts web3's agent while its gossip is cut
// off: the new agent remembers the farm of three from its state_dir, sees
// only itself, and must not serve alone (it answers no client, even with
// gossip.bootstrap set), while web1
// and web2 serve everyone. After healing it rejoins with its share.
func TestRestartInsidePartition(t *testing.T) {
	f := startFarm(t, 3, "")
	heal := f.cutGossip(3, "")
	healed := false
	defer func() {
		if !healed {
			heal()
		}
	}()
	f.waitStatus(1, 10*time.Second, "web1 and web2 own every bucket", func(st statusView) error {
		if st.Buckets["web1"]+st.Buckets["web2"] != 4096 || !st.Quorum {
			return fmt.Errorf("not yet: %v", st)
		}
		return nil
	})
	if err := f.agents[2].Stop(); err != nil {
		t.Fatal(err)
	}
	// Even told to bootstrap (as the first node of a farm would be), the node
	// that remembers its farm needs a majority of it.
	f.startAgent(3, "[gossip]\nbootstrap = true\n")
	// Past the join grace (5 s): the node counts the farm it remembers.
	f.waitStatus(3, 20*time.Second, "the restarted web3 knows it has no majority", func(st statusView) error {
		if st.Quorum || len(st.States) < 3 {
			return fmt.Errorf("quorum %v, nodes %v", st.Quorum, st.States)
		}
		return nil
	})
	time.Sleep(6 * time.Second) // past the join grace, when a node that remembered nothing would have served alone
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := f.l.Burst(ctx, f.l.Sources(64), 2, f.l.VIPURL)
	t.Logf("web3 restarted inside the partition:\n%s", res.Table())
	if res.PerNode["web3"] > 0 {
		t.Errorf("the restarted web3 answered %d new connections without a majority", res.PerNode["web3"])
	}
	if len(res.Failures) > 0 {
		t.Errorf("%d of %d requests failed, first %+v", len(res.Failures), res.Requests, res.Failures[0])
	}
	if st, err := f.status(3); err == nil {
		t.Logf("web3's view: quorum %v, %d of %d healthy", st.Quorum, st.Healthy, st.Known)
	}
	heal()
	healed = true
	f.waitUp(3, 60*time.Second)
}
