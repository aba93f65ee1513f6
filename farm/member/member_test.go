package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/view"
)

// freePort finds a port free for both TCP and UDP on loopback (serf uses both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type node struct {
	m       *Membership
	mu      sync.Mutex
	view    view.View
	actions []string
	done    chan error
	cancel  context.CancelFunc
}

func (n *node) View() view.View {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.view
}

func startNode(t *testing.T, name string, id uint8, key []byte, join []string) (*node, string) {
	t.Helper()
	bind := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := &node{done: make(chan error, 1)}
	n.m = New(Config{
		Name: name, ID: id, Weight: 100, Bind: bind, Join: join, Key: key,
		RetryInterval: 100 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		SuspicionMult: 2, SwitchLead: 500 * time.Millisecond,
		OnAction: func(a string) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			if a == "fail" {
				return errors.New("refused on purpose")
			}
			n.actions = append(n.actions, a)
			return nil
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(v view.View) {
		n.mu.Lock()
		n.view = v
		n.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	return n, bind
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two real serf nodes on loopback: they find each other with the key, share
// the buckets, carry an action from one to the other, and the survivor takes
// everything when its peer leaves.
func TestMembershipOnLoopback(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	a, bindA := startNode(t, "a", 1, key, nil)
	b, _ := startNode(t, "b", 2, key, []string{bindA})

	waitFor(t, 10*time.Second, "both nodes to see two members up", func() bool {
		for _, n := range []*node{a, b} {
			v := n.View()
			if !v.Joined || !v.Quorum || v.Shares[1] == 0 || v.Shares[2] == 0 || v.Shares[1]+v.Shares[2] != 4096 {
				return false
			}
		}
		return true
	})
	if *a.View().Table != *b.View().Table {
		t.Fatal("the two nodes computed different tables")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.m.Act(ctx, "b", "drain"); err != nil {
		t.Fatalf("act on b from a: %v", err)
	}
	b.mu.Lock()
	got := fmt.Sprint(b.actions)
	b.mu.Unlock()
	if got != "[drain]" {
		t.Fatalf("b's actions = %s, want [drain]", got)
	}
	if err := a.m.Act(ctx, "b", "fail"); err == nil || !strings.Contains(err.Error(), "refused on purpose") {
		t.Fatalf("a refused action must come back as b's error, got %v", err)
	}
	if err := a.m.Act(ctx, "nosuch", "stop"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("unknown node: got %v", err)
	}

	// b's application fails: not a planned move, nothing announced.
	if err := b.m.SetLocal(view.StateFailed, 100); err != nil {
		t.Fatal(err)
	}
	switchOf := func(v view.View, name string) (view.State, int64) {
		for _, n := range v.Nodes {
			if n.Name == name {
				return n.State, n.SwitchAt
			}
		}
		return "", -1
	}
	waitFor(t, 5*time.Second, "a to see b failed, announcing no switch time", func() bool {
		st, at := switchOf(a.View(), "b")
		return st == view.StateFailed && at == 0
	})
	// b stops: a planned move, announced SwitchLead ahead in b's tags.
	stopAt := time.Now()
	if err := b.m.SetLocal(view.StateStopped, 100); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a to own everything while b is stopped", func() bool {
		return a.View().Shares[1] == 4096
	})
	if _, at := switchOf(a.View(), "b"); at < stopAt.Add(400*time.Millisecond).UnixNano() || at > time.Now().Add(500*time.Millisecond).UnixNano() {
		t.Errorf("b's stop announced switch time %v, want about 500ms after %v", time.Unix(0, at), stopAt)
	}
	b.cancel() // b leaves gracefully
	waitFor(t, 10*time.Second, "a to see b gone and keep quorum", func() bool {
		v := a.View()
		return v.Shares[1] == 4096 && v.Quorum && v.Known == 1
	})
}

// A node without the key cannot join.
func TestMembershipWrongKey(t *testing.T) {
	key := make([]byte, 32)
	other := make([]byte, 32)
	other[0] = 1
	a, bindA := startNode(t, "a", 1, key, nil)
	b, _ := startNode(t, "b", 2, other, []string{bindA})
	time.Sleep(1500 * time.Millisecond) // give a wrong join every chance to happen
	for _, n := range []*node{a, b} {
		if v := n.View(); len(v.Nodes) != 1 {
			t.Fatalf("a node with another key joined: %+v", v.Nodes)
		}
	}
}

// nextPoll must wake the loop no later than the first instant a verdict can
// change without a new packet, and not poll busily when nothing is due.
func TestNextPoll(t *testing.T) {
	now := time.Unix(1000, 0)
	ms := time.Millisecond
	silence := 300 * ms
	cases := []struct {
		name      string
		last      []time.Time
		cut, fres bool
		want      time.Time
	}{
		{"no peers", nil, false, false, now.Add(pollMax)},
		{"cut off: wait for a packet", []time.Time{now.Add(-time.Second)}, true, false, now.Add(pollWaiting)},
		{"not fresh: wait for a packet", []time.Time{now.Add(-10 * ms)}, false, false, now.Add(pollWaiting)},
		// Last heard 50 ms and 250 ms ago: the silence verdict is due 250 ms
		// from now (50 + 300), the freshness count 250 ms from now too
		// (250 + 500 = 750 > 250).
		{"silence first", []time.Time{now.Add(-50 * ms), now.Add(-250 * ms)}, false, true, now.Add(251 * ms)},
		// A peer heard 450 ms ago goes stale in 50 ms, before the silence.
		{"stale first", []time.Time{now.Add(-10 * ms), now.Add(-450 * ms)}, false, true, now.Add(51 * ms)},
		// A peer already stale does not count; the fresh one decides.
		{"stale peer ignored", []time.Time{now.Add(-10 * ms), now.Add(-2 * time.Second)}, false, true, now.Add(291 * ms)},
		// A long silence setting: never sleep past pollMax.
		{"bounded", []time.Time{now}, false, true, now.Add(pollMax)},
		// A deadline already passed: look at once.
		{"overdue", []time.Time{now.Add(-400 * ms)}, false, true, now},
	}
	for _, c := range cases {
		s := silence
		if c.name == "bounded" {
			s = 10 * time.Second
		}
		if got := nextPoll(c.last, now, c.cut, c.fres, s); !got.Equal(c.want) {
			t.Errorf("%s: next poll in %v, want %v", c.name, got.Sub(now), c.want.Sub(now))
		}
	}
}
