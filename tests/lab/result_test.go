package lab

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestResult(t *testing.T) {
	a, b := netip.MustParseAddr("10.213.1.1"), netip.MustParseAddr("10.213.1.2")
	c := newCollector()
	c.add(a, "u", "web2", nil)
	c.add(a, "u", "web2", nil)
	c.add(b, "u", "web10", nil)
	c.add(b, "u", "web2", nil)
	c.add(b, "u", "", errors.New("timeout"))
	r := c.result()
	if r.Requests != 5 || r.OK() != 4 || len(r.Failures) != 1 {
		t.Errorf("counts: %d requests, %d ok, %d failures", r.Requests, r.OK(), len(r.Failures))
	}
	if got := r.Split(); len(got) != 1 || got[0] != b {
		t.Errorf("Split = %v, want [%s]", got, b)
	}
	if got := r.Nodes(); !slices.Equal(got, []string{"web2", "web10"}) {
		t.Errorf("Nodes = %v", got)
	}
	table := r.Table()
	for _, want := range []string{"web2              3   75.0%        2", "web10             1   25.0%        1", "failed            1", "split src         1"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	var m Result
	m.Merge(r)
	m.Merge(r)
	if m.Requests != 10 || m.PerNode["web2"] != 6 || m.PerSource[b]["web10"] != 2 || len(m.Failures) != 2 {
		t.Errorf("merged %+v", m)
	}
}

func TestCompareNames(t *testing.T) {
	in := []string{"web10", "client", "web2", "web1", "x"}
	slices.SortFunc(in, compareNames)
	if want := []string{"client", "web1", "web2", "web10", "x"}; !slices.Equal(in, want) {
		t.Errorf("sorted %v, want %v", in, want)
	}
}

func TestParseFDB(t *testing.T) {
	out := []byte(`[{"mac":"33:33:00:00:00:01","ifname":"p1","flags":["self"],"state":"permanent"},
{"mac":"ea:26:84:99:b8:62","ifname":"p1","flags":[],"master":"br0","state":"permanent"},
{"mac":"02:1A:B0:00:00:01","ifname":"p1","flags":[],"master":"br0","state":""}]`)
	f, err := parseFDB(out)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mac  string
		want int
	}{
		{"02:1a:b0:00:00:01", 1}, // learned
		{"02:1A:B0:00:00:01", 1}, // any case
		{"ea:26:84:99:b8:62", 0}, // the port's own address: permanent
		{"33:33:00:00:00:01", 0}, // multicast filter entry: self
		{"02:bf:0a:d5:00:64", 0}, // never seen
	}
	for _, tt := range tests {
		t.Run(tt.mac, func(t *testing.T) {
			if got := f.Find(tt.mac); len(got) != tt.want {
				t.Errorf("Find = %v, want %d entries", got, tt.want)
			}
		})
	}
	if !strings.Contains(f.String(), "02:1a:b0:00:00:01 dev p1 master br0") {
		t.Errorf("String:\n%s", f)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(context.Background(), 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls; want nil after 3", err, n)
	}
	err := Poll(context.Background(), 50*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") {
		t.Errorf("Poll = %v; want the last error", err)
	}
}
