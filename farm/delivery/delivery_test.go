package delivery

import (
	"strings"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := Settings{Window: 10 * time.Second, MinConns: 20, Ratio: 0.5}
	feed := func(tr *Tracker, rates map[string]uint64, from, to int) {
		for sec := from; sec <= to; sec += 2 {
			for n, r := range rates {
				tr.Add(n, t0.Add(time.Duration(sec)*time.Second), map[string]uint64{"10.0.0.100": r * uint64(sec)})
			}
		}
	}
	t.Run("all see the same: nothing", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 10, "web2": 10, "web3": 11}, 0, 20)
		if f := tr.Check(t0.Add(20 * time.Second)); len(f) != 0 {
			t.Fatalf("findings %+v", f)
		}
	})
	t.Run("one node sees a tenth", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 10, "web2": 10, "web3": 1}, 0, 20)
		f := tr.Check(t0.Add(20 * time.Second))
		if len(f) != 1 || f[0].Node != "web3" || f[0].VIP != "10.0.0.100" {
			t.Fatalf("findings %+v, want web3", f)
		}
		if !strings.Contains(f[0].Text(), "switch learned the virtual MAC") {
			t.Errorf("text %q does not name the likely cause", f[0].Text())
		}
		if r := tr.Ratios(t0.Add(20 * time.Second)); r["web3"] > 0.2 || r["web1"] < 0.9 {
			t.Errorf("ratios %v", r)
		}
	})
	t.Run("two nodes: the one that sees less", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 10, "web2": 0}, 0, 20)
		f := tr.Check(t0.Add(20 * time.Second))
		if len(f) != 1 || f[0].Node != "web2" {
			t.Fatalf("findings %+v, want web2", f)
		}
	})
	t.Run("idle farm says nothing", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 1, "web2": 1, "web3": 0}, 0, 20)
		if f := tr.Check(t0.Add(20 * time.Second)); len(f) != 0 {
			t.Fatalf("findings %+v", f)
		}
	})
	t.Run("too little history says nothing", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 100, "web2": 100, "web3": 0}, 0, 2)
		if f := tr.Check(t0.Add(2 * time.Second)); len(f) != 0 {
			t.Fatalf("findings %+v", f)
		}
	})
	t.Run("a restarted counter starts over", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 10, "web2": 10, "web3": 10}, 0, 20)
		tr.Add("web3", t0.Add(22*time.Second), map[string]uint64{"10.0.0.100": 3})
		if f := tr.Check(t0.Add(22 * time.Second)); len(f) != 0 {
			t.Fatalf("findings after a restart %+v", f)
		}
	})
	t.Run("stale and forgotten nodes are not judged", func(t *testing.T) {
		tr := New(s)
		feed(tr, map[string]uint64{"web1": 10, "web2": 10, "web3": 1}, 0, 20)
		tr.Forget("web3")
		if f := tr.Check(t0.Add(20 * time.Second)); len(f) != 0 {
			t.Fatalf("findings %+v", f)
		}
		if f := tr.Check(t0.Add(60 * time.Second)); len(f) != 0 {
			t.Fatalf("stale findings %+v", f)
		}
	})
}
