package member

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// FuzzNodeFromTags decodes the tags a peer gossips (untrusted: another
// program on the gossip port, a future version, a corrupted peer): no panic;
// an id outside 1..table.MaxID or unreadable gives id 0 (owns nothing); an
// unreadable weight gives 0; a node serf does not see alive is down whatever
// it claims; and what Tags encodes reads back the same.
func FuzzNodeFromTags(f *testing.F) {
	f.Add("web1", "10.0.0.1:7946", true, false, "1", "100", "up", "", "")
	f.Add("web2", "[2001:db8::2]:7946", true, false, "250", "0", "draining", "x", "y")
	f.Add("web3", "", false, true, "251", "4294967296", "up", "id", "7")
	f.Add("", "", true, false, "-1", "-1", "", "", "")
	f.Add("x", "y", true, false, "+7", "007", "UP", "st", "stopped")
	f.Add("x", "y", true, false, "0x10", "1e3", "failed\x00", "w", "")
	f.Add("x", "y", true, false, " 1", "18446744073709551616", "down", "", "")
	f.Add("x", "y", true, false, "3", "100", "up", "sw", "1764582000123")
	f.Add("x", "y", true, false, "3", "100", "up", "sw", "-5")
	f.Add("x", "y", true, false, "3", "100", "up", "sw", "99999999999999999999")
	f.Fuzz(func(t *testing.T, name, addr string, alive, left bool, id, weight, state, k, v string) {
		tags := map[string]string{tagID: id, tagWeight: weight, tagState: state}
		if k != "" {
			tags[k] = v // an unknown tag, or one overriding a known one
		}
		n := nodeFromTags(name, addr, alive, left, tags)
		if n.Name != name || n.Addr != addr || n.Alive != alive || n.Left != left {
			t.Fatalf("identity changed: %+v", n)
		}
		if n.ID > table.MaxID {
			t.Fatalf("id %d above %d", n.ID, table.MaxID)
		}
		if got, err := strconv.Atoi(tags[tagID]); n.ID != 0 && (err != nil || got != int(n.ID)) {
			t.Fatalf("id %d from tag %q", n.ID, tags[tagID])
		}
		if got, err := strconv.ParseUint(tags[tagWeight], 10, 32); n.Weight != 0 && (err != nil || got != uint64(n.Weight)) {
			t.Fatalf("weight %d from tag %q", n.Weight, tags[tagWeight])
		}
		if n.SwitchAt < 0 || n.SwitchAt/int64(time.Millisecond) > maxSwitchMS || (n.SwitchAt != 0 && (len(tags[tagSwitch]) > maxSwitchTagLen || n.SwitchAt%int64(time.Millisecond) != 0)) {
			t.Fatalf("switch time %d from tag %q", n.SwitchAt, tags[tagSwitch])
		}
		if !alive && n.State != view.StateDown {
			t.Fatalf("a node serf sees failed is %q, want down", n.State)
		}
		// A member that owns buckets passed every check.
		if o := view.Owners([]view.Node{n}); len(o) == 1 && (n.ID == 0 || !alive || n.State != view.StateUp) {
			t.Fatalf("%+v owns buckets", n)
		}

		// The encoding round trip, for what this node publishes.
		var wid uint8
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i <= 255 {
			wid = uint8(i)
		}
		var w uint32
		if u, err := strconv.ParseUint(weight, 10, 32); err == nil {
			w = uint32(u)
		}
		var at time.Time
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 && ms <= maxSwitchMS {
			at = time.UnixMilli(ms)
		}
		back := nodeFromTags(name, addr, true, false, Tags(wid, w, view.State(state), at))
		wantID := wid
		if wid > table.MaxID {
			wantID = 0
		}
		var wantAt int64
		if !at.IsZero() {
			wantAt = at.UnixNano()
		}
		if back.ID != wantID || back.Weight != w || back.State != view.State(state) || back.SwitchAt != wantAt {
			t.Fatalf("Tags(%d, %d, %q, %v) reads back as %+v", wid, w, state, at, back)
		}
	})
}

// FuzzActQuery sends arbitrary action query payloads (the serf query a peer
// sends to ask this node to stop, start or drain) through real serf, on
// loopback, to a real Membership: it must not panic, must run the action
// only when the payload is "<this node>\x00<action>", exactly that action
// and once, and answer "ok" or "error: ...".
func FuzzActQuery(f *testing.F) {
	for _, s := range []string{
		"b\x00drain", "b\x00stop", "b\x00start", "b\x00fail", "b\x00", "b", "", "\x00b",
		"a\x00stop", "b\x00stop\x00start", "bb\x00stop", "B\x00stop", "b \x00stop", "b\x00\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	n := startFuzzNode(f, "b")
	f.Fuzz(func(t *testing.T, payload []byte) {
		n.mu.Lock()
		n.calls = nil
		n.mu.Unlock()
		resp, err := n.serf.Query(queryAct, payload, &serf.QueryParam{Timeout: 5 * time.Second})
		if err != nil {
			return // too large for a query: serf refuses to send it
		}
		defer resp.Close()
		var answer string
		for r := range resp.ResponseCh() {
			if r.From == "b" {
				answer = string(r.Payload)
				break
			}
		}
		n.mu.Lock()
		calls := n.calls
		n.mu.Unlock()
		node, action, ok := strings.Cut(string(payload), "\x00")
		switch {
		case ok && node == "b":
			if len(calls) != 1 || calls[0] != action {
				t.Fatalf("payload %q ran %q, want [%q]", payload, calls, action)
			}
			want := "ok"
			if action == "fail" {
				want = "error: refused on purpose"
			}
			if answer != want {
				t.Fatalf("payload %q answered %q, want %q", payload, answer, want)
			}
		default:
			if len(calls) != 0 {
				t.Fatalf("payload %q not for this node ran %q", payload, calls)
			}
			if answer != "error: query not for this node" {
				t.Fatalf("payload %q answered %q", payload, answer)
			}
		}
	})
}

// fuzzNode is one Membership on loopback whose serf the fuzz target uses to
// query it (serf answers a node's own queries through the same path as a
// peer's).
type fuzzNode struct {
	serf  *serf.Serf
	mu    sync.Mutex
	calls []string
}

func startFuzzNode(tb testing.TB, name string) *fuzzNode {
	tb.Helper()
	var bind string
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			bind = fmt.Sprintf("127.0.0.1:%d", port)
			break
		}
	}
	if bind == "" {
		tb.Fatal("no free port")
	}
	key := make([]byte, 32)
	n := &fuzzNode{}
	m := New(Config{
		Name: name, ID: 2, Weight: 100, Bind: bind, Key: key,
		RetryInterval: 100 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		SuspicionMult: 2,
		OnAction: func(a string) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.calls = append(n.calls, a)
			if a == "fail" {
				return fmt.Errorf("refused on purpose")
			}
			return nil
		},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("%s did not stop", name)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		n.serf = m.serf
		m.mu.Unlock()
		if n.serf != nil {
			return n
		}
		select {
		case err := <-done:
			tb.Fatalf("membership ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatal("serf did not start")
		}
	}
}
