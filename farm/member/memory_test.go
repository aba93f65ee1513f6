package member

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/view"
)

// startAlone runs a node whose join list names a peer that never answers.
func startAlone(t *testing.T, name string, key []byte, remembered []string, bootstrap bool) *node {
	t.Helper()
	n := &node{done: make(chan error, 1)}
	n.m = New(Config{
		Name: name, ID: 1, Weight: 100, Bind: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		Join: []string{fmt.Sprintf("127.0.0.1:%d", freePort(t))}, Key: key,
		RetryInterval: 100 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		SuspicionMult: 2, Remembered: remembered, Bootstrap: bootstrap, JoinGrace: 300 * time.Millisecond,
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
	return n
}

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// A node restarted inside a partition (it remembers a farm of three and
// reaches nobody) must not serve alone; a new node without bootstrap waits;
// with bootstrap it serves.
func TestRememberedFarm(t *testing.T) {
	key := testKey(t)
	t.Run("remembers three, sees one: no quorum", func(t *testing.T) {
		n := startAlone(t, "web1", key, []string{"web1", "web2", "web3"}, false)
		waitFor(t, 5*time.Second, "joined", func() bool { return n.View().Joined })
		time.Sleep(300 * time.Millisecond)
		v := n.View()
		if v.Quorum || v.Known != 3 || v.Healthy != 1 {
			t.Fatalf("quorum %v known %d healthy %d: want no quorum, 1 of 3", v.Quorum, v.Known, v.Healthy)
		}
		down := 0
		for _, nd := range v.Nodes {
			if nd.Name != "web1" && nd.State == view.StateDown && nd.ID == 0 {
				down++
			}
		}
		if down != 2 {
			t.Errorf("remembered peers shown down: %d, want 2: %+v", down, v.Nodes)
		}
	})
	t.Run("new node without bootstrap waits for a peer", func(t *testing.T) {
		n := startAlone(t, "web1", key, nil, false)
		time.Sleep(time.Second) // past the grace
		if v := n.View(); v.Joined {
			t.Fatalf("a new node that reached nobody serves: %+v", v)
		}
	})
	t.Run("new node with bootstrap serves alone", func(t *testing.T) {
		n := startAlone(t, "web1", key, nil, true)
		waitFor(t, 5*time.Second, "joined with quorum", func() bool { v := n.View(); return v.Joined && v.Quorum })
	})
	t.Run("remembers only itself: a farm of one", func(t *testing.T) {
		n := startAlone(t, "web1", key, []string{"web1"}, false)
		waitFor(t, 5*time.Second, "joined with quorum", func() bool { v := n.View(); return v.Joined && v.Quorum })
	})
}
