package main

import (
	"net/netip"
	"slices"
	"time"
)

// median of xs (the mean of the two middle values for an even count); 0 for
// none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianDur is median over durations.
func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// maxDur is the largest of ds (0 for none).
func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// sample is one request of a load generator: a new connection from Src.
type sample struct {
	Src   netip.Addr
	Start time.Time
	End   time.Time
	OK    bool
	Node  string // the answer's body: the node that served it
	Err   string // short error class when !OK
}

// outage describes the effect of one node's death on a steady load of new
// connections, seen from the clients.
type outage struct {
	// Recovered is the time from the kill until every source that failed
	// after it succeeded again: the maximum over sources of (end of the first
	// success after the source's last failure - kill). It is what the
	// clients saw; zero if no request failed.
	Recovered time.Duration `json:"recovered_ns"`
	// LastFailed is the maximum over sources of (start of the last failed
	// request - kill): a lower bound of the outage (a SYN sent then was still
	// lost), where Recovered is an upper one.
	LastFailed time.Duration `json:"last_failed_ns"`
	// Unrecovered lists sources that never succeeded again in the window.
	Unrecovered []netip.Addr `json:"unrecovered,omitempty"`
	// Requests and Failures count the requests that ended after the kill.
	Requests int `json:"requests"`
	Failures int `json:"failures"`
	// FailedSources is how many sources saw a failure after the kill;
	// VictimSources how many the victim answered before it.
	FailedSources int `json:"failed_sources"`
	VictimSources int `json:"victim_sources"`
	// Collateral counts failures of sources the victim did not serve before
	// the kill: with "only its buckets move" it must be zero.
	Collateral int `json:"collateral_failures"`
	// Errors counts failures by class (timeout, refused, reset...).
	Errors map[string]int `json:"errors,omitempty"`
}

// analyzeOutage computes the outage of victim killed at kill, from the
// samples of a load that ran until end (requests ending after end are
// ignored, so a later phase does not leak in).
func analyzeOutage(samples []sample, victim string, kill, end time.Time) outage {
	var o outage
	samples = slices.Clone(samples)
	slices.SortStableFunc(samples, func(a, b sample) int { return a.Start.Compare(b.Start) })
	before := map[netip.Addr]string{} // last answer before the kill
	type state struct {
		lastFail *sample
		firstOK  *sample
	}
	per := map[netip.Addr]*state{}
	var order []netip.Addr
	for i := range samples {
		s := &samples[i]
		if s.OK && !s.End.After(kill) {
			before[s.Src] = s.Node
		}
	}
	for _, n := range before {
		if n == victim {
			o.VictimSources++
		}
	}
	for i := range samples {
		s := &samples[i]
		if !s.End.After(kill) || s.End.After(end) {
			continue
		}
		o.Requests++
		st := per[s.Src]
		if st == nil {
			st = &state{}
			per[s.Src] = st
			order = append(order, s.Src)
		}
		if !s.OK {
			o.Failures++
			if o.Errors == nil {
				o.Errors = map[string]int{}
			}
			o.Errors[s.Err]++
			if before[s.Src] != victim {
				o.Collateral++
			}
			st.lastFail, st.firstOK = s, nil
			continue
		}
		if st.lastFail != nil && st.firstOK == nil {
			st.firstOK = s
		}
	}
	for _, src := range order {
		st := per[src]
		if st.lastFail == nil {
			continue
		}
		o.FailedSources++
		o.LastFailed = max(o.LastFailed, st.lastFail.Start.Sub(kill))
		if st.firstOK == nil {
			o.Unrecovered = append(o.Unrecovered, src)
			continue
		}
		o.Recovered = max(o.Recovered, st.firstOK.End.Sub(kill))
	}
	slices.SortFunc(o.Unrecovered, netip.Addr.Compare)
	return o
}

// window counts the requests that started in [from, to) and how many of
// them failed, by error class.
func window(samples []sample, from, to time.Time) (requests, failures int, errs map[string]int) {
	for _, s := range samples {
		if s.Start.Before(from) || !s.Start.Before(to) {
			continue
		}
		requests++
		if !s.OK {
			failures++
			if errs == nil {
				errs = map[string]int{}
			}
			errs[s.Err]++
		}
	}
	return requests, failures, errs
}

// span describes the failed requests that started in [from, to): how many
// sources they hit, and when the first and last of them started, in ms
// after from (-1 without failures).
type span struct {
	Sources int     `json:"sources"`
	FirstMS float64 `json:"first_ms"`
	LastMS  float64 `json:"last_ms"`
	// Owners counts the failed sources by the node that answered them
	// last before from.
	Owners map[string]int `json:"owners,omitempty"`
}

func failSpan(samples []sample, from, to time.Time) span {
	sp := span{FirstMS: -1, LastMS: -1}
	last := map[netip.Addr]string{}
	failed := map[netip.Addr]bool{}
	for _, s := range samples {
		if s.OK && !s.End.After(from) {
			last[s.Src] = s.Node
		}
	}
	for _, s := range samples {
		if s.OK || s.Start.Before(from) || !s.Start.Before(to) {
			continue
		}
		d := ms(s.Start.Sub(from))
		if sp.FirstMS < 0 || d < sp.FirstMS {
			sp.FirstMS = d
		}
		sp.LastMS = max(sp.LastMS, d)
		if !failed[s.Src] {
			failed[s.Src] = true
			sp.Sources++
			if sp.Owners == nil {
				sp.Owners = map[string]int{}
			}
			sp.Owners[last[s.Src]]++
		}
	}
	return sp
}

// ms renders a duration in milliseconds for the tables.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
