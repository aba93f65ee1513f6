package chaos

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Analyze attributes requests to fault windows and applies each invariant
// to its kind: failures in a planned change, clients unserved past the
// limit after a crash, late agreement, doubles.
func TestAnalyze(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a, b := netip.MustParseAddr("10.213.1.1"), netip.MustParseAddr("fd00:213:0:1::2")
	windows := []Window{
		{Step: Step{N: 1, Kind: KillAgent, Nodes: []int{2}}, Start: at(1000), Heal: at(3000), Agreed: at(4000), End: at(5000)},
		{Step: Step{N: 2, Kind: Drain, Nodes: []int{3}}, Start: at(10000), Heal: at(14000), Agreed: at(17000), End: at(18000)},
	}
	recs := []Rec{
		{Src: a, Start: at(500), End: at(510), Node: "web1"},                // steady, fine
		{Src: a, Start: at(1100), End: at(2110), Node: "web1", Retx: 1},     // unserved at 1.1 s: 0.1 s after the crash
		{Src: b, Start: at(1200), End: at(3210), Node: "web1", Retx: 2},     // unserved at 2.2 s: 1.2 s after: late
		{Src: b, Start: at(2900), End: at(4900), Node: "web1", Retx: 2},     // unserved at 2.9 s (3.9 s is after the heal)
		{Src: b, Start: at(4300), End: at(4310), Node: "web1"},              // served
		{Src: a, Start: at(9990), End: at(10300), Err: "connection reset"},  // in flight when the drain began: the drain's
		{Src: a, Start: at(11000), End: at(11500), Err: "connection reset"}, // planned change failed a request
		{Src: a, Start: at(20000), End: at(20010), Err: "timeout"},          // steady failure
	}
	lost := []Event{{Src: b, At: at(12000), What: "dialled again"}}
	doubles := []Double{{At: at(1500), What: "SYN answered by web1 and web2"}, {At: at(1700), What: "SYN answered by web2 and web3"}}
	an := Analyze(windows, recs, lost, doubles)
	row := func(k Kind) Row {
		for _, r := range an.Rows {
			if r.Kind == k {
				return r
			}
		}
		t.Fatalf("no row %s", k)
		return Row{}
	}
	ka, dr, st := row(KillAgent), row(Drain), row(SteadyKind)
	if ka.Faults != 1 || ka.Requests != 4 || ka.SynRetx != 3 || ka.LateServe != 1 || ka.Doubles != 2 || ka.LateAgree != 0 {
		t.Errorf("kill-agent row: %+v", ka)
	}
	if ka.WorstServe != 3900*time.Millisecond {
		t.Errorf("worst time to serve %s, want 3.9s (b answered at 4.9 s)", ka.WorstServe)
	}
	if dr.PlannedFails != 3 || dr.LateAgree != 1 || dr.WorstAgree != 3*time.Second {
		t.Errorf("drain row: %+v", dr)
	}
	if st.Requests != 2 || st.SteadyFails != 1 {
		t.Errorf("steady row: %+v", st)
	}
	found := false
	for _, d := range an.Details {
		found = found || strings.Contains(d, "2 SYNs answered twice from +500ms to +700ms (heal at +2s)")
	}
	if !found {
		t.Errorf("no span of the doubles in %q", an.Details)
	}
	if n := an.Violations(); n != 8 {
		t.Errorf("%d violations, want 8:\n%s\n%v", n, an.Table(), an.Details)
	}
}

// SYN retransmissions: 1 s apart for SynLinearTimeouts+1, then doubling
// (tcp_retransmit_timer); with 0 the classic 1, 3, 7 s.
func TestSynSent(t *testing.T) {
	defer func(l int) { SynLinearTimeouts = l }(SynLinearTimeouts)
	for lin, want := range map[int][]time.Duration{
		4: {0, 1, 2, 3, 4, 5, 7, 11, 19},
		0: {0, 1, 3, 7, 15},
	} {
		SynLinearTimeouts = lin
		for j, w := range want {
			if got := synSent(j); got != w*time.Second {
				t.Errorf("linear %d: retransmission %d at %s, want %s", lin, j, got, w*time.Second)
			}
		}
	}
}
