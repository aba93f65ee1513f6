package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const wrkKeepAlive = `Running 3s test @ http://10.213.0.100/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.97ms    4.83ms  87.39ms   96.14%
    Req/Sec    13.99k     3.40k   23.15k    76.27%
  Latency Distribution
     50%    1.11ms
     75%    1.51ms
     90%    3.15ms
     99%   23.15ms
  83705 requests in 3.04s, 12.13MB read
Requests/sec:  27497.07
Transfer/sec:      3.99MB
`

const wrkErrors = `Running 10s test @ http://10.213.0.100/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   596.00us  452.10us   1.20s    91.94%
    Req/Sec     0.87k   287.44     1.61k    65.45%
  Latency Distribution
     50%  496.00us
     75%  670.00us
     90%    0.96ms
     99%    1.01s
  17137 requests in 10.01s, 2.37MB read
  Socket errors: connect 3, read 1, write 0, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:   1712.54
Transfer/sec:    245.27KB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    wrkRun
		wantErr bool
	}{
		{"keep-alive", wrkKeepAlive, wrkRun{
			ReqPerSec: 27497.07, Requests: 83705, Duration: 3040 * time.Millisecond,
			LatAvg: 1970 * time.Microsecond, LatMax: 87390 * time.Microsecond,
			LatP50: 1110 * time.Microsecond, LatP99: 23150 * time.Microsecond,
		}, false},
		{"errors and units", wrkErrors, wrkRun{
			ReqPerSec: 1712.54, Requests: 17137, Duration: 10010 * time.Millisecond,
			LatAvg: 596 * time.Microsecond, LatMax: 1200 * time.Millisecond,
			LatP50: 496 * time.Microsecond, LatP99: 1010 * time.Millisecond,
			ErrConnect: 3, ErrRead: 1, ErrTimeout: 12, Non2xx: 5,
		}, false},
		{"no result", "unable to connect to 10.213.0.100:80 Connection refused\n", wrkRun{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			// Float parsing of "1.97ms" may be off by a nanosecond.
			round := func(r wrkRun) wrkRun {
				for _, d := range []*time.Duration{&r.Duration, &r.LatAvg, &r.LatMax, &r.LatP50, &r.LatP99} {
					*d = d.Round(time.Microsecond)
				}
				return r
			}
			if diff := cmp.Diff(round(tt.want), round(got)); diff != "" {
				t.Errorf("parseWrk (-want +got):\n%s", diff)
			}
			if tt.name == "errors and units" && got.Errors() != 21 {
				t.Errorf("Errors() = %d, want 21", got.Errors())
			}
		})
	}
}

func TestParseNFQueue(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []nfQueue
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"two queues", " 4200  18295     0 2   128     0     0     5239  1\n 4201  18296     3 2   128     7     9       12  1\n",
			[]nfQueue{{Queue: 4200, Seq: 5239}, {Queue: 4201, Total: 3, Dropped: 7, UserDropped: 9, Seq: 12}}, false},
		{"short line", "4200 1 2\n", nil, true},
		{"not a number", "4200 x 0 2 128 0 0 1 1\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNFQueue(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseNFQueue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSNMP(t *testing.T) {
	in := "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm PassiveOpens\nTcp: 1 42\nTcpExt: SyncookiesSent TCPSynRetrans\nTcpExt: 0 7\n"
	want := map[string]int64{"Ip.Forwarding": 2, "Ip.DefaultTTL": 64, "Tcp.RtoAlgorithm": 1, "Tcp.PassiveOpens": 42,
		"TcpExt.SyncookiesSent": 0, "TcpExt.TCPSynRetrans": 7}
	if diff := cmp.Diff(want, parseSNMP(in)); diff != "" {
		t.Errorf("parseSNMP (-want +got):\n%s", diff)
	}
}

func TestQueueDelta(t *testing.T) {
	tests := []struct {
		name          string
		before, after []nfQueue
		want          nfQueue
	}{
		{"growth", []nfQueue{{Queue: 4200, Seq: 100, Dropped: 1}}, []nfQueue{{Queue: 4200, Seq: 150, Dropped: 3, Total: 2}},
			nfQueue{Queue: 4200, Seq: 50, Dropped: 2, Total: 2}},
		{"rebound queue counts from zero", []nfQueue{{Queue: 4200, Seq: 100}}, []nfQueue{{Queue: 4200, Seq: 20}},
			nfQueue{Queue: 4200, Seq: 20}},
		{"nothing bound", nil, nil, nfQueue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, queueDelta(tt.before, tt.after)); diff != "" {
				t.Errorf("queueDelta (-want +got):\n%s", diff)
			}
		})
	}
}
