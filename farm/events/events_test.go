package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRingList(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name  string
		size  int
		add   int // events 1..add at base+i s
		since time.Time
		limit int
		want  []string // What of the listed events
	}{
		{"empty", 3, 0, time.Time{}, 0, nil},
		{"all", 3, 2, time.Time{}, 0, []string{"e1", "e2"}},
		{"wraps keeping newest", 3, 5, time.Time{}, 0, []string{"e3", "e4", "e5"}},
		{"limit keeps newest", 3, 5, time.Time{}, 2, []string{"e4", "e5"}},
		{"since is exclusive", 10, 5, at(3), 0, []string{"e4", "e5"}},
		{"since and limit", 10, 5, at(1), 1, []string{"e5"}},
		{"since after all", 10, 5, at(9), 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.size, nil)
			for i := 1; i <= tt.add; i++ {
				r.Add(Event{Time: at(i), What: fmt.Sprintf("e%d", i)})
			}
			var got []string
			for _, e := range r.List(tt.since, tt.limit) {
				got = append(got, e.What)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("List = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRingDefaultsAndSeq(t *testing.T) {
	r := NewRing(0, nil)
	for i := 0; i < DefaultSize+5; i++ {
		r.Add(Event{What: "x"})
	}
	if r.Len() != DefaultSize {
		t.Fatalf("Len = %d, want %d", r.Len(), DefaultSize)
	}
	all := r.List(time.Time{}, 0)
	if all[0].Seq != 6 || all[len(all)-1].Seq != DefaultSize+5 {
		t.Fatalf("seq range %d..%d, want 6..%d", all[0].Seq, all[len(all)-1].Seq, DefaultSize+5)
	}
	if all[0].Time.IsZero() {
		t.Fatal("Add did not stamp Time")
	}
	after := r.ListAfter(DefaultSize+3, 0)
	if len(after) != 2 || after[0].Seq != DefaultSize+4 {
		t.Fatalf("ListAfter = %+v", after)
	}
}

func TestRingLogsAndCopiesDetail(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	r := NewRing(4, log)
	d := map[string]string{"checker": "web"}
	r.Add(Event{Node: "web1", What: "checker.failing", Why: "connection refused", Detail: d})
	d["checker"] = "changed"
	if got := r.List(time.Time{}, 0)[0].Detail["checker"]; got != "web" {
		t.Fatalf("detail changed under the ring: %q", got)
	}
	for _, want := range []string{"what=checker.failing", "subject=web1", "checker=web", `why="connection refused"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}

func TestRingConcurrent(t *testing.T) {
	r := NewRing(50, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				r.Add(Event{What: "x"})
				_ = r.List(time.Time{}, 10)
			}
		}()
	}
	wg.Wait()
	all := r.List(time.Time{}, 0)
	if len(all) != 50 || all[49].Seq != 1600 {
		t.Fatalf("got %d events, last seq %d", len(all), all[len(all)-1].Seq)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("events out of order at %d: %d after %d", i, all[i].Seq, all[i-1].Seq)
		}
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   Event
		want string
	}{
		{"all fields", Event{Seq: 7, Time: at, Node: "web2", What: "checker.failing", Why: "connection refused",
			Detail: map[string]string{"checker": "web"}},
			`{"seq":7,"time":"2026-01-02T03:04:05Z","node":"web2","what":"checker.failing","why":"connection refused","detail":{"checker":"web"}}`},
		{"no detail", Event{Seq: 1, Time: at, Node: "web1", What: "node.up"},
			`{"seq":1,"time":"2026-01-02T03:04:05Z","node":"web1","what":"node.up","why":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("json = %s\nwant   %s", b, tt.want)
			}
			var back Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.in, back); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFind(t *testing.T) {
	r := NewRing(10, nil)
	r.Add(Event{Node: "web1", What: "node.up"})
	r.Add(Event{Node: "web2", What: "operator.stop"})
	r.Add(Event{Node: "web1", What: "checker.failing"})
	if got := r.Find(0, "web1", "", 0); len(got) != 2 {
		t.Errorf("web1's events: %d, want 2", len(got))
	}
	if got := r.Find(0, "", "operator", 0); len(got) != 1 || got[0].Node != "web2" {
		t.Errorf("operator events: %+v", got)
	}
	if got := r.Find(1, "web1", "", 0); len(got) != 1 || got[0].What != "checker.failing" {
		t.Errorf("after seq 1: %+v", got)
	}
}
