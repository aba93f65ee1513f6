package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// wrkRun is what one wrk run printed (with --latency).
type wrkRun struct {
	ReqPerSec float64       `json:"req_per_sec"`
	Requests  int64         `json:"requests"`
	Duration  time.Duration `json:"duration_ns"`
	LatAvg    time.Duration `json:"latency_avg_ns"`
	LatMax    time.Duration `json:"latency_max_ns"`
	LatP50    time.Duration `json:"latency_p50_ns"`
	LatP99    time.Duration `json:"latency_p99_ns"`
	// Socket errors as wrk counts them; a timeout is a request without an
	// answer within wrk's 2 s timeout (a SYN lost twice, say).
	ErrConnect int64 `json:"err_connect"`
	ErrRead    int64 `json:"err_read"`
	ErrWrite   int64 `json:"err_write"`
	ErrTimeout int64 `json:"err_timeout"`
	// Non2xx counts answers other than 2xx/3xx.
	Non2xx int64 `json:"non_2xx"`
}

// Errors is the sum of wrk's socket errors and bad statuses.
func (r wrkRun) Errors() int64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrTimeout + r.Non2xx
}

// parseWrk reads wrk 4.x output. Requests/sec is required; the rest is
// taken when present.
func parseWrk(out string) (wrkRun, error) {
	var r wrkRun
	var haveRPS bool
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "Latency" && len(f) >= 4 && !inDist:
			r.LatAvg, _ = parseWrkDuration(f[1])
			r.LatMax, _ = parseWrkDuration(f[3])
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk latency line %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				r.LatP50 = d
			case "99%":
				r.LatP99 = d
			}
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk line %q: %w", line, err)
			}
			r.Requests = n
			r.Duration, _ = parseWrkDuration(strings.TrimSuffix(f[3], ","))
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 12
			rest := strings.TrimPrefix(line, "Socket errors:")
			for _, part := range strings.Split(rest, ",") {
				kv := strings.Fields(part)
				if len(kv) != 2 {
					continue
				}
				n, err := strconv.ParseInt(kv[1], 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk line %q: %w", line, err)
				}
				switch kv[0] {
				case "connect":
					r.ErrConnect = n
				case "read":
					r.ErrRead = n
				case "write":
					r.ErrWrite = n
				case "timeout":
					r.ErrTimeout = n
				}
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk line %q: %w", line, err)
			}
			r.Non2xx = n
		case f[0] == "Requests/sec:" && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk line %q: %w", line, err)
			}
			r.ReqPerSec, haveRPS = v, true
		}
	}
	if !haveRPS {
		return r, fmt.Errorf("no Requests/sec line in wrk output: %q", out)
	}
	return r, nil
}

// parseWrkDuration reads wrk's durations: 496.00us, 1.11ms, 2.00s, 1.50m.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("duration %q: unknown unit", s)
}

// nfQueue is one line of /proc/net/netfilter/nfnetlink_queue: the counters
// of one queue bound in a namespace.
type nfQueue struct {
	Queue int `json:"queue"`
	// Total is how many packets wait in the queue right now.
	Total int64 `json:"waiting"`
	// Dropped: packets dropped because the queue was full (queue_maxlen).
	Dropped int64 `json:"queue_dropped"`
	// UserDropped: packets the kernel could not hand to the reader (its
	// netlink socket buffer was full).
	UserDropped int64 `json:"user_dropped"`
	// Seq is the id of the last packet queued: the number of packets queued
	// since the queue was bound.
	Seq int64 `json:"queued"`
}

// parseNFQueue reads /proc/net/netfilter/nfnetlink_queue:
// queue peer_portid queue_total copy_mode copy_range queue_dropped
// user_dropped id_sequence 1.
func parseNFQueue(text string) ([]nfQueue, error) {
	var out []nfQueue
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("nfnetlink_queue line %q: want at least 8 fields", line)
		}
		var v [8]int64
		for i := range v {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("nfnetlink_queue line %q: field %d: %w", line, i+1, err)
			}
			v[i] = n
		}
		out = append(out, nfQueue{Queue: int(v[0]), Total: v[2], Dropped: v[5], UserDropped: v[6], Seq: v[7]})
	}
	return out, nil
}

// parseSNMP reads the header/value line pairs of /proc/net/snmp and
// /proc/net/netstat ("Tcp: A B\nTcp: 1 2") into "Tcp.A" -> 1.
func parseSNMP(text string) map[string]int64 {
	out := map[string]int64{}
	var header []string
	var hdrProto string
	for _, line := range strings.Split(text, "\n") {
		proto, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if header == nil || proto != hdrProto {
			header, hdrProto = f, proto
			continue
		}
		for i, name := range header {
			if i < len(f) {
				if n, err := strconv.ParseInt(f[i], 10, 64); err == nil {
					out[proto+"."+name] = n
				}
			}
		}
		header = nil
	}
	return out
}

// queueDelta sums the counters of every queue after minus before (a queue
// that was bound again starts from zero: then its after value counts).
func queueDelta(before, after []nfQueue) nfQueue {
	var d nfQueue
	for _, a := range after {
		var b nfQueue
		for _, x := range before {
			if x.Queue == a.Queue && x.Seq <= a.Seq {
				b = x
			}
		}
		d.Queue = a.Queue
		d.Total += a.Total
		d.Seq += a.Seq - b.Seq
		d.Dropped += a.Dropped - b.Dropped
		d.UserDropped += a.UserDropped - b.UserDropped
	}
	return d
}
