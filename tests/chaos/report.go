package chaos

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// The invariants' limits.
const (
	// ServeLimit: after a crash every client is served again within this
	// (the design's bar for a node killed without warning).
	ServeLimit = time.Second
	// AgreeLimit: every node agrees on the table within this after a
	// fault heals.
	AgreeLimit = 2 * time.Second
	// SlowRequest: a keep-alive request slower than this was not served
	// (a lost segment, a connection stuck on a dead node).
	SlowRequest = time.Second
)

// Rec is one request of the load.
type Rec struct {
	Src        netip.Addr
	Long       bool // on a keep-alive connection
	Start, End time.Time
	Err        string
	Node       string // who answered
	Retx       uint32 // new connections: SYN retransmissions (TCP_INFO)
}

func (r Rec) ok() bool { return r.Err == "" }

// bad reports a request that shows the client was not served at some time:
// failed, SYN retransmitted, or a keep-alive answer slower than SlowRequest.
func (r Rec) bad() bool {
	return !r.ok() || r.Retx > 0 || (r.Long && r.End.Sub(r.Start) > SlowRequest)
}

// SynLinearTimeouts is the kernel's net.ipv4.tcp_syn_linear_timeouts (4 by
// default since Linux 6.6; 0 before): the retransmission timer of a SYN
// stays at 1 s for that many retransmissions (so the first L+1 leave 1 s
// apart), then doubles. The soak reads it from the client's namespace.
var SynLinearTimeouts = 4

// synSent is when retransmission j of a SYN left, after the first at 0.
func synSent(j int) time.Duration {
	lin := SynLinearTimeouts + 1
	if j <= lin {
		return time.Duration(j) * time.Second
	}
	d := time.Duration(lin) * time.Second
	for i, rto := lin, 2*time.Second; i < j; i, rto = i+1, rto*2 {
		d += rto
	}
	return d
}

// unservedAt is the latest moment up to until at which the request proves
// its client was not served, and whether there is one: a failure at its
// end; a new connection answered only at SYN retransmission k, when its
// last SYN that went unanswered left; a slow keep-alive answer at its start.
func (r Rec) unservedAt(until time.Time) (time.Time, bool) {
	var u time.Time
	switch {
	case !r.ok():
		u = r.End
	case r.Retx > 0:
		for j := int(r.Retx) - 1; j >= 0; j-- {
			if u = r.Start.Add(synSent(j)); !u.After(until) {
				break
			}
		}
	default:
		u = r.Start
	}
	return u, !u.After(until)
}

// Event is a keep-alive connection lost (the client dialled again).
type Event struct {
	Src  netip.Addr
	At   time.Time
	What string
}

// Window is one fault from its start to a second after the farm agreed
// again.
type Window struct {
	Step        Step
	Start, Heal time.Time
	Agreed      time.Time // zero: never agreed
	End         time.Time
	Err         string // the fault could not be applied or healed
	Notes       []string
}

// TTA is the time from heal to agreement (-1 when it never agreed).
func (w Window) TTA() time.Duration {
	if w.Agreed.IsZero() {
		return -1
	}
	return w.Agreed.Sub(w.Heal)
}

// Double is a SYN answered by two nodes, at a time.
type Double struct {
	At   time.Time
	What string
}

// Row is the report line of one fault kind.
type Row struct {
	Kind             Kind
	Faults           int
	Requests, Failed int
	SynRetx          int // new connections whose SYN was retransmitted (unanswered 1 s)
	Doubles          int // violations: SYNs answered by two nodes
	PlannedFails     int // violations: failed requests and lost keep-alive connections in a planned change
	HealFails        int // violations: failed requests after a crash healed (the node rejoining)
	SteadyFails      int // violations: failed requests outside any fault
	LateServe        int // violations: clients still unserved more than ServeLimit after a crash
	WorstServe       time.Duration
	LateAgree        int // violations: no agreement within AgreeLimit of the heal
	WorstAgree       time.Duration
	Errors           int // violations: the fault could not be applied, or the farm never agreed
}

// Violations sums a row's violations.
func (r Row) Violations() int {
	return r.Doubles + r.PlannedFails + r.HealFails + r.SteadyFails + r.LateServe + r.LateAgree + r.Errors
}

// Analysis is the soak's verdict.
type Analysis struct {
	Rows    []Row
	Details []string // one line per violation, for the log
}

// Violations sums every row's.
func (a Analysis) Violations() int {
	n := 0
	for _, r := range a.Rows {
		n += r.Violations()
	}
	return n
}

// Analyze attributes every request, lost connection and double answer to
// the fault window it started in (a failed request that started just before
// a window and ended in it, to that window), or to steady time, and checks the
// invariants per window. windows must be in time order and disjoint.
func Analyze(windows []Window, recs []Rec, lost []Event, doubles []Double) Analysis {
	rows := map[Kind]*Row{}
	for _, k := range append(slices.Clone(Kinds), SteadyKind) {
		rows[k] = &Row{Kind: k}
	}
	var details []string
	detail := func(format string, args ...any) {
		if len(details) < 400 {
			details = append(details, fmt.Sprintf(format, args...))
		}
	}
	find := func(t time.Time) int {
		i := sort.Search(len(windows), func(i int) bool { return !windows[i].End.Before(t) })
		if i < len(windows) && !t.Before(windows[i].Start) {
			return i
		}
		return -1
	}
	bySrc := map[netip.Addr][]Rec{}
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b Rec) int { return a.Start.Compare(b.Start) })
	for _, r := range sorted {
		bySrc[r.Src] = append(bySrc[r.Src], r)
	}
	for _, w := range windows {
		row := rows[w.Step.Kind]
		row.Faults++
		if w.Err != "" {
			row.Errors++
			detail("%s: %s", w.Step, w.Err)
		}
		if tta := w.TTA(); tta < 0 {
			row.Errors++
			detail("%s: the nodes never agreed on the table after the heal", w.Step)
		} else {
			row.WorstAgree = max(row.WorstAgree, tta)
			if tta > AgreeLimit {
				row.LateAgree++
				detail("%s: nodes agreed %s after the heal (limit %s)", w.Step, tta.Round(time.Millisecond), AgreeLimit)
			}
		}
	}
	for _, r := range sorted {
		i := find(r.Start)
		if i < 0 && !r.ok() {
			// A request still in flight when a fault began (nginx killed
			// under it) failed because of that fault, not in steady time.
			i = find(r.End)
		}
		k := SteadyKind
		if i >= 0 {
			k = windows[i].Step.Kind
		}
		row := rows[k]
		row.Requests++
		if r.Retx > 0 && !r.Long {
			row.SynRetx++
		}
		if r.ok() {
			continue
		}
		row.Failed++
		switch {
		case i < 0:
			row.SteadyFails++
			detail("steady %s: %s %s failed: %s", r.Start.UTC().Format("15:04:05.000"), kindOfConn(r), r.Src, r.Err)
		case k.Planned():
			row.PlannedFails++
			detail("%s: %s %s failed at +%s: %s", windows[i].Step, kindOfConn(r), r.Src, r.Start.Sub(windows[i].Start).Round(time.Millisecond), r.Err)
		case !r.Start.Before(windows[i].Heal):
			row.HealFails++
			detail("%s: %s %s failed %s after the heal: %s", windows[i].Step, kindOfConn(r), r.Src, r.Start.Sub(windows[i].Heal).Round(time.Millisecond), r.Err)
		}
	}
	for _, e := range lost {
		i := find(e.At)
		if i >= 0 && windows[i].Step.Kind.Planned() {
			rows[windows[i].Step.Kind].PlannedFails++
			detail("%s: keep-alive %s lost its connection at +%s: %s", windows[i].Step, e.Src, e.At.Sub(windows[i].Start).Round(time.Millisecond), e.What)
		} else if i < 0 {
			rows[SteadyKind].SteadyFails++
			detail("steady %s: keep-alive %s lost its connection: %s", e.At.UTC().Format("15:04:05.000"), e.Src, e.What)
		}
	}
	perWindow := map[int]int{}
	type span struct{ first, last time.Time }
	spans := map[int]*span{}
	for _, d := range doubles {
		k := SteadyKind
		where := "steady " + d.At.UTC().Format("15:04:05.000")
		i := find(d.At)
		if i >= 0 {
			k = windows[i].Step.Kind
			where = fmt.Sprintf("%s at +%s (heal at +%s)", windows[i].Step, d.At.Sub(windows[i].Start).Round(time.Millisecond),
				windows[i].Heal.Sub(windows[i].Start).Round(time.Millisecond))
		}
		rows[k].Doubles++
		if sp := spans[i]; sp == nil {
			spans[i] = &span{d.At, d.At}
		} else {
			sp.first, sp.last = minTime(sp.first, d.At), maxTime(sp.last, d.At)
		}
		if perWindow[i]++; perWindow[i] <= 5 {
			detail("%s: %s", where, d.What)
		} else if perWindow[i] == 6 {
			detail("%s: ... more SYNs answered twice in this window (see the row's count)", where)
		}
	}
	for _, i := range slices.Sorted(maps.Keys(spans)) {
		if i < 0 || perWindow[i] < 2 {
			continue
		}
		w, sp := windows[i], spans[i]
		detail("%s: %d SYNs answered twice from +%s to +%s (heal at +%s)", w.Step, perWindow[i],
			sp.first.Sub(w.Start).Round(time.Millisecond), sp.last.Sub(w.Start).Round(time.Millisecond), w.Heal.Sub(w.Start).Round(time.Millisecond))
	}
	// Time to serve after a crash: per source, the latest moment up to the
	// heal at which a request proves it was not served, and the first
	// answer after that. Gaps after the heal (the node rejoining, buckets
	// handed back) are not the crash's: they show as synRtx and healFl.
	for _, w := range windows {
		if w.Step.Kind.Planned() {
			continue
		}
		row := rows[w.Step.Kind]
		var worst time.Duration
		var worstSrc netip.Addr
		for src, rs := range bySrc {
			var last time.Time
			lastIdx := -1
			for j, r := range rs {
				if r.Start.Before(w.Start) {
					continue
				}
				if r.Start.After(w.Heal) {
					break
				}
				if r.bad() {
					if u, ok := r.unservedAt(w.Heal); ok && u.After(last) {
						last, lastIdx = u, j
					}
				}
			}
			if lastIdx < 0 {
				continue
			}
			if late := last.Sub(w.Start); late > ServeLimit {
				row.LateServe++
				detail("%s: %s still unserved %s after the fault began (%s)", w.Step, src, late.Round(time.Millisecond), describe(rs[lastIdx]))
			}
			served := time.Time{}
			for _, r := range rs[lastIdx:] {
				if r.ok() && !r.End.Before(last) {
					served = r.End
					break
				}
			}
			d := served.Sub(w.Start)
			if served.IsZero() {
				d = w.End.Sub(w.Start)
			}
			if d > worst {
				worst, worstSrc = d, src
			}
		}
		if worst > row.WorstServe {
			row.WorstServe = worst
		}
		_ = worstSrc
	}
	a := Analysis{Details: details}
	for _, k := range append(slices.Clone(Kinds), SteadyKind) {
		a.Rows = append(a.Rows, *rows[k])
	}
	return a
}

func kindOfConn(r Rec) string {
	if r.Long {
		return "keep-alive"
	}
	return "new connection"
}

func describe(r Rec) string {
	s := fmt.Sprintf("%s at %s took %s", kindOfConn(r), r.Start.UTC().Format("15:04:05.000"), r.End.Sub(r.Start).Round(time.Millisecond))
	if r.Retx > 0 {
		s += fmt.Sprintf(", %d SYN retransmissions", r.Retx)
	}
	if r.Err != "" {
		s += ": " + r.Err
	} else {
		s += ", answered by " + r.Node
	}
	return s
}

// Table renders the rows: one per kind and steady, then the total.
func (a Analysis) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %6s %8s %6s %6s | %7s %7s %7s %7s %7s %7s %7s | %9s %9s | %s\n",
		"kind", "faults", "requests", "failed", "synRtx",
		"double", "planFl", "healFl", "stdyFl", "lateSrv", "lateAgr", "errors",
		"worstSrv", "worstAgr", "violations")
	var tot Row
	for _, r := range a.Rows {
		srv, agr := "-", "-"
		if r.Kind != SteadyKind && !r.Kind.Planned() && r.Faults > 0 {
			srv = r.WorstServe.Round(time.Millisecond).String()
		}
		if r.Faults > 0 {
			agr = r.WorstAgree.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-12s %6d %8d %6d %6d | %7d %7d %7d %7d %7d %7d %7d | %9s %9s | %d\n",
			r.Kind, r.Faults, r.Requests, r.Failed, r.SynRetx,
			r.Doubles, r.PlannedFails, r.HealFails, r.SteadyFails, r.LateServe, r.LateAgree, r.Errors,
			srv, agr, r.Violations())
		tot.Faults += r.Faults
		tot.Requests += r.Requests
		tot.Failed += r.Failed
		tot.SynRetx += r.SynRetx
		tot.Doubles += r.Doubles
		tot.PlannedFails += r.PlannedFails
		tot.HealFails += r.HealFails
		tot.SteadyFails += r.SteadyFails
		tot.LateServe += r.LateServe
		tot.LateAgree += r.LateAgree
		tot.Errors += r.Errors
	}
	fmt.Fprintf(&b, "%-12s %6d %8d %6d %6d | %7d %7d %7d %7d %7d %7d %7d | %9s %9s | %d\n",
		"TOTAL", tot.Faults, tot.Requests, tot.Failed, tot.SynRetx,
		tot.Doubles, tot.PlannedFails, tot.HealFails, tot.SteadyFails, tot.LateServe, tot.LateAgree, tot.Errors,
		"", "", tot.Violations())
	return b.String()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
