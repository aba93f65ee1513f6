package member

import (
	"testing"
	"time"
)

// Kill ends gossip without leaving: the survivors find out through the
// failure detector (not a leave message) and take over the buckets.
func TestKillIsNotALeave(t *testing.T) {
	key := make([]byte, 32)
	a, bindA := startNode(t, "a", 1, key, nil)
	b, _ := startNode(t, "b", 2, key, []string{bindA})
	c, _ := startNode(t, "c", 3, key, []string{bindA})
	waitFor(t, 10*time.Second, "three nodes to share the buckets", func() bool {
		for _, n := range []*node{a, b, c} {
			v := n.View()
			if !v.Joined || v.Shares[1] == 0 || v.Shares[2] == 0 || v.Shares[3] == 0 {
				return false
			}
		}
		return true
	})
	start := time.Now()
	if err := c.m.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err == nil {
			t.Fatal("Run returned nil after Kill, want an error")
		}
		c.done <- err // for the cleanup of startNode
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Kill")
	}
	waitFor(t, 10*time.Second, "a and b to take over c's buckets", func() bool {
		for _, n := range []*node{a, b} {
			v := n.View()
			if v.Shares[1]+v.Shares[2] != 4096 {
				return false
			}
		}
		return true
	})
	t.Logf("survivors took over after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range []*node{a, b} {
		for _, nd := range n.View().Nodes {
			if nd.Name == "c" && nd.Left {
				t.Fatal("c counts as left: Kill must not leave the farm")
			}
		}
	}
	if err := (&Membership{}).Kill(); err == nil {
		t.Fatal("Kill of a membership that never ran: want an error")
	}
}
