package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAnalyzeOutage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a := netip.MustParseAddr("10.213.1.1") // served by web2, the victim
	b := netip.MustParseAddr("10.213.1.2") // served by web1
	ok := func(src netip.Addr, start int, node string) sample {
		return sample{Src: src, Start: at(start), End: at(start + 1), OK: true, Node: node}
	}
	fail := func(src netip.Addr, start int) sample {
		return sample{Src: src, Start: at(start), End: at(start + 300), Err: "timeout"}
	}
	kill, end := at(1000), at(5000)
	tests := []struct {
		name    string
		samples []sample
		want    outage
	}{
		{"no failure", []sample{ok(a, 900, "web2"), ok(b, 950, "web1"), ok(a, 1200, "web1")},
			outage{Requests: 1, VictimSources: 1}},
		{"victim source fails twice, then recovers", []sample{
			ok(a, 900, "web2"), ok(b, 950, "web1"),
			fail(a, 1100), fail(a, 1420), ok(b, 1500, "web1"), ok(a, 1740, "web3"), ok(a, 2060, "web3"),
		}, outage{Recovered: 741 * time.Millisecond, LastFailed: 420 * time.Millisecond, Requests: 5, Failures: 2,
			FailedSources: 1, VictimSources: 1, Errors: map[string]int{"timeout": 2}}},
		{"failure, success, failure: the last failure counts", []sample{
			ok(a, 900, "web2"), fail(a, 1100), ok(a, 1420, "web1"), fail(a, 1740), ok(a, 2060, "web1"),
		}, outage{Recovered: 1061 * time.Millisecond, LastFailed: 740 * time.Millisecond, Requests: 4, Failures: 2,
			FailedSources: 1, VictimSources: 1, Errors: map[string]int{"timeout": 2}}},
		{"collateral and unrecovered", []sample{
			ok(a, 900, "web2"), ok(b, 950, "web1"), fail(b, 1100), fail(a, 1200),
		}, outage{LastFailed: 200 * time.Millisecond, Requests: 2, Failures: 2, FailedSources: 2, VictimSources: 1,
			Collateral: 1, Unrecovered: []netip.Addr{a, b}, Errors: map[string]int{"timeout": 2}}},
		{"requests ending after the window are ignored", []sample{
			ok(a, 900, "web2"), fail(a, 4800),
		}, outage{VictimSources: 1}},
		{"out of order input", []sample{
			ok(a, 2060, "web1"), fail(a, 1100), ok(a, 900, "web2"),
		}, outage{Recovered: 1061 * time.Millisecond, LastFailed: 100 * time.Millisecond, Requests: 2, Failures: 1,
			FailedSources: 1, VictimSources: 1, Errors: map[string]int{"timeout": 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := analyzeOutage(tt.samples, "web2", kill, end)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("analyzeOutage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := []sample{
		{Start: t0, OK: true},
		{Start: t0.Add(time.Second), Err: "timeout"},
		{Start: t0.Add(2 * time.Second), OK: true},
	}
	req, fail, errs := window(s, t0.Add(time.Millisecond), t0.Add(2*time.Second))
	if req != 1 || fail != 1 || errs["timeout"] != 1 {
		t.Errorf("window = %d, %d, %v; want 1, 1, timeout 1", req, fail, errs)
	}
}

func TestSettingLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "defaults"},
		{"  \n", "defaults"},
		{fastGossip, `[gossip] probe_interval="100ms" probe_timeout="50ms"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := settingLabel(tt.in); got != tt.want {
				t.Errorf("settingLabel(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
