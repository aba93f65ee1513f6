package member

import (
	"testing"
	"time"
)

func TestSilence(t *testing.T) {
	now := time.Unix(1000, 0)
	after := 300 * time.Millisecond
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, c := range []struct {
		name string
		last []time.Time
		want bool
	}{
		{"no peers", nil, false},
		{"one peer heard", []time.Time{ago(10 * time.Millisecond)}, false},
		{"one peer silent", []time.Time{ago(time.Second)}, true},
		{"one of two silent (it may be dead)", []time.Time{ago(time.Second), ago(100 * time.Millisecond)}, false},
		{"all silent", []time.Time{ago(time.Second), ago(400 * time.Millisecond)}, true},
		{"exactly the silence time is not yet", []time.Time{ago(after)}, false},
		{"never heard counts as long ago", []time.Time{{}, {}}, true},
	} {
		if got := silence(c.last, now, after); got != c.want {
			t.Errorf("%s: silence = %v, want %v", c.name, got, c.want)
		}
	}
}

// A node that stops hearing its peers (its inbound gossip dropped, as when a
// firewall or a broken gossip link cuts it off but clients still reach it)
// suspects them all and loses quorum, while the other two keep theirs and
// declare it dead. When it hears them again it serves again.
func TestCutOffNodeLosesQuorum(t *testing.T) {
	key := make([]byte, 32)
	a, bindA := startNode(t, "a", 1, key, nil)
	b, _ := startNode(t, "b", 2, key, []string{bindA})
	c, _ := startNode(t, "c", 3, key, []string{bindA})
	all := []*node{a, b, c}
	waitFor(t, 10*time.Second, "three members up with quorum", func() bool {
		for _, n := range all {
			if v := n.View(); v.Healthy != 3 || !v.Quorum {
				return false
			}
		}
		return true
	})

	cut := time.Now()
	c.m.heard.cut.Store(true)
	var lost, declared time.Duration
	defer func() {
		for _, n := range all {
			v := n.View()
			t.Logf("quorum=%v healthy=%d known=%d nodes=%+v", v.Quorum, v.Healthy, v.Known, v.Nodes)
		}
	}()
	waitFor(t, 10*time.Second, "c to lose quorum and a, b to declare it dead", func() bool {
		if lost == 0 && !c.View().Quorum {
			lost = time.Since(cut)
		}
		if declared == 0 {
			dead := true
			for _, n := range []*node{a, b} {
				for _, m := range n.View().Nodes {
					if m.Name == "c" && m.Alive {
						dead = false
					}
				}
			}
			if dead {
				declared = time.Since(cut)
			}
		}
		return lost > 0 && declared > 0
	})
	t.Logf("c: %+v", c.View())
	for _, n := range []*node{a, b} {
		if !n.View().Quorum {
			t.Fatal("the majority lost quorum")
		}
	}
	// Which comes first is timing on a shared machine: logged, not asserted.
	t.Logf("cut-off node lost quorum after %v; the majority declared it dead after %v", lost.Round(time.Millisecond), declared.Round(time.Millisecond))

	c.m.heard.cut.Store(false)
	waitFor(t, 20*time.Second, "c back with quorum", func() bool {
		v := c.View()
		return v.Quorum && v.Healthy == 3
	})
}

// When a peer dies, the survivors' probes of it stall (memberlist waits out
// each failed probe), but they still hear each other: neither may count
// itself cut off and lose quorum.
func TestPeerDeathDoesNotCutOffSurvivors(t *testing.T) {
	key := make([]byte, 32)
	a, bindA := startNode(t, "a", 1, key, nil)
	b, _ := startNode(t, "b", 2, key, []string{bindA})
	c, _ := startNode(t, "c", 3, key, []string{bindA})
	waitFor(t, 10*time.Second, "three members up with quorum", func() bool {
		for _, n := range []*node{a, b, c} {
			if v := n.View(); v.Healthy != 3 || !v.Quorum {
				return false
			}
		}
		return true
	})
	if err := c.m.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range []*node{a, b} {
			if v := n.View(); !v.Quorum {
				t.Fatalf("a survivor lost quorum after its peer died: %+v", v)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, n := range []*node{a, b} {
		if v := n.View(); v.Healthy != 2 {
			t.Fatalf("survivor's view after the death: %+v", v)
		}
	}
}
