package agent

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/webfarm/farm/console"
	"github.com/webfarm/farm/farm/delivery"
)

// infoSeeds are info answers as peers send them (member.InfoLimit bytes at
// most), and some a peer should not send.
var infoSeeds = []string{
	`{"f":12,"c":[{"n":"web","y":"http","s":"passing","t":1700000000}],"s":{"10.0.0.100":42,"2001:db8::100":7},"p":"running","v":true,"t":1700000000}`,
	`{"f":-1,"v":false,"w":"no-quorum","t":1700000002}`,
	`{"f":0,"c":[{"n":"a","y":"tcp","s":"failing","e":"dial tcp 127.0.0.1:80: connect: connection refused","t":-62135596800}],"v":true,"t":0}`,
	`{"f":1,"s":{},"t":1}`,
	`{"f":1,"s":{"10.0.0.100":18446744073709551615},"t":1}`,
	`{"f":9223372036854775807,"c":[],"p":"","t":253402300799}`,
	`{"x":1}`, `null`, `[]`, `{"c":[null,{}]}`, `{"s":{"":0}}`, ``,
}

// FuzzInfoDetail decodes a peer's info answer (untrusted: any member of the
// farm, or a future version, sends it) as gather does, converts it for the
// console (info.detail) and checks that the console can serve it: no panic,
// every field carried over, and the detail encodes as JSON, which
// /api/v1/status, `farm status --json` and the console's event stream do
// with every node's detail in one document.
func FuzzInfoDetail(f *testing.F) {
	for _, s := range infoSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var in info
		if len(b) == 0 || json.Unmarshal(b, &in) != nil {
			return // gather shows nothing for such a peer
		}
		d := in.detail()
		if d == nil {
			t.Fatal("detail() = nil")
		}
		if d.Flows != in.Flows || d.Phase != in.Phase || d.Serving != in.Serving || d.Why != in.Why ||
			len(d.Checkers) != len(in.Checkers) || len(d.Seen) != len(in.Seen) {
			t.Fatalf("detail %+v does not carry info %+v", d, in)
		}
		for i, c := range in.Checkers {
			got := d.Checkers[i]
			if got.Name != c.Name || got.Type != c.Type || got.State != c.State || got.LastError != c.Err {
				t.Fatalf("checker %d: %+v from %+v", i, got, c)
			}
		}
		st := console.Status{Nodes: []console.NodeStatus{{Name: "peer", State: "up", Detail: d}}}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("a peer's info answer %s makes the farm's status unencodable: %v", b, err)
		}
	})
}

// FuzzInfoDelivery feeds a sequence of info answers from three peers into
// the frame-delivery self-test, the way gather does every detailEvery: no
// panic; what the test reports stays within what the peers reported (a
// node cannot have seen more new connections over the window than its
// largest counter), and the per-node ratios exported as metrics stay in
// [0, 1].
func FuzzInfoDelivery(f *testing.F) {
	f.Add([]byte(`{"s":{"v":100},"t":1}` + "\n" + `{"s":{"v":100},"t":1}` + "\n" + `{"s":{"v":100},"t":1}` + "\n" +
		`{"s":{"v":200},"t":1}` + "\n" + `{"s":{"v":200},"t":1}` + "\n" + `{"s":{"v":110},"t":1}` + "\n" +
		`{"s":{"v":300},"t":1}` + "\n" + `{"s":{"v":300},"t":1}` + "\n" + `{"s":{"v":120},"t":1}` + "\n" +
		`{"s":{"v":400},"t":1}` + "\n" + `{"s":{"v":400},"t":1}` + "\n" + `{"s":{"v":130},"t":1}`))
	f.Add([]byte(`{"s":{"a":5,"b":7}}` + "\n" + `{"s":{"a":50}}` + "\n" + `{}` + "\n" + `{"s":{"a":1}}` + "\n" + `{"s":{"b":70,"a":90}}` + "\n" + `{"s":{"a":2}}`))
	for _, s := range infoSeeds {
		f.Add([]byte(s + "\n" + s + "\n" + s))
	}
	peers := []string{"web1", "web2", "web3"}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := delivery.New(delivery.DefaultSettings)
		now := time.Unix(1700000000, 0)
		var largest uint64
		lines := bytes.Split(b, []byte("\n"))
		if len(lines) > 60 {
			lines = lines[:60]
		}
		for i, line := range lines {
			if i%len(peers) == 0 {
				now = now.Add(detailEvery)
			}
			var in info
			if len(line) == 0 || json.Unmarshal(line, &in) != nil {
				continue
			}
			in.detail()
			if in.Seen != nil {
				tr.Add(peers[i%len(peers)], now, in.Seen)
				for _, n := range in.Seen {
					largest = max(largest, n)
				}
			}
			for _, fd := range tr.Check(now) {
				if fd.Seen > largest || fd.Peers > largest {
					t.Fatalf("finding %+v: more than any counter reported (%d)\n%s", fd, largest, b)
				}
				_ = fd.Text()
			}
			for node, r := range tr.Ratios(now) {
				if math.IsNaN(r) || r < 0 || r > 1 {
					t.Fatalf("ratio of %s = %v\n%s", node, r, b)
				}
			}
		}
	})
}
