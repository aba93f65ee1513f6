// Package events keeps the recent history of what happened on this node
// (checker verdicts, recoveries, membership changes) in a bounded ring, so
// the console and `farm status` can show why a node is in its state without
// anyone reading the agent's logs. Every event is also logged once, here, so
// the log and the console never disagree.
package events

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultSize is the ring's capacity when NewRing is given 0: enough for a
// day of a flapping checker, small enough to copy on every console request.
const DefaultSize = 1000

// Event is one thing that happened on a node. Its JSON keys are lowercase,
// like the rest of the agent's API.
type Event struct {
	// Seq numbers events in the order they were added, from 1. Pollers pass
	// the last Seq they saw to ListAfter, which never misses nor repeats an
	// event even when two share the same Time.
	Seq uint64 `json:"seq"`
	// Time is when it happened; Add sets it to now when zero.
	Time time.Time `json:"time"`
	// Node is the node the event is about.
	Node string `json:"node"`
	// What is a short stable name, e.g. "checker.failing", "recovery.restart".
	What string `json:"what"`
	// Why is a human sentence explaining it.
	Why string `json:"why"`
	// Detail holds optional key/value context (checker name, exit code).
	// It must not be modified after Add.
	Detail map[string]string `json:"detail,omitempty"`
}

// Ring is a bounded, concurrency-safe history of events: when full, the
// oldest event is dropped. The zero value is not usable; call NewRing.
type Ring struct {
	log *slog.Logger

	mu   sync.Mutex
	buf  []Event // circular, len(buf) == capacity
	next int     // index the next event is written to
	n    int     // events held, <= len(buf)
	seq  uint64
}

// NewRing returns an empty ring holding at most size events (DefaultSize when
// size <= 0). Every added event is logged to log (nil: not logged).
func NewRing(size int, log *slog.Logger) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	return &Ring{log: log, buf: make([]Event, size)}
}

// Add records e, stamping Seq and, if zero, Time, and logs it.
func (r *Ring) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Detail = maps.Clone(e.Detail)
	r.mu.Lock()
	r.seq++
	e.Seq = r.seq
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.n < len(r.buf) {
		r.n++
	}
	r.mu.Unlock()

	if r.log != nil {
		// "subject", not "node": the agent's logger already carries the
		// logging node's own name as "node".
		attrs := []any{"seq", e.Seq, "subject", e.Node, "what", e.What, "why", e.Why}
		for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
			attrs = append(attrs, k, e.Detail[k])
		}
		r.log.Info("Farm event.", attrs...)
	}
}

// List returns the events whose Time is after since (all when since is zero),
// oldest first and newest last, at most limit of them (the newest ones;
// limit <= 0 means no limit).
func (r *Ring) List(since time.Time, limit int) []Event {
	return r.filter(func(e *Event) bool { return since.IsZero() || e.Time.After(since) }, limit)
}

// ListAfter is List by sequence number: the events with Seq > seq. It is the
// reliable way to poll for new events.
func (r *Ring) ListAfter(seq uint64, limit int) []Event {
	return r.filter(func(e *Event) bool { return e.Seq > seq }, limit)
}

// Find is ListAfter restricted to one node's events (node "" matches all)
// and to one kind (the part of What before its first dot: "node",
// "operator", "checker", ...; "" matches all), for the console's filters.
func (r *Ring) Find(seq uint64, node, kind string, limit int) []Event {
	return r.filter(func(e *Event) bool {
		if e.Seq <= seq || (node != "" && e.Node != node) {
			return false
		}
		k, _, _ := strings.Cut(e.What, ".")
		return kind == "" || k == kind
	}, limit)
}

// Len reports how many events the ring holds.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *Ring) filter(keep func(*Event) bool, limit int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	start := (r.next - r.n + len(r.buf)) % len(r.buf)
	for i := 0; i < r.n; i++ {
		e := &r.buf[(start+i)%len(r.buf)]
		if keep(e) {
			out = append(out, *e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}
