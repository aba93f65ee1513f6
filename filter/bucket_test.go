package filter

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestBucketOf pins the key layout: Windows and Linux nodes, old and new
// versions, must all put a client in the same bucket, so both the key
// bytes and a few resulting buckets are fixed here.
func TestBucketOf(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		port   uint16
		aff    Affinity
		key    []byte
		pinned uint16
	}{
		{"v4 ip", "192.0.2.1", 40000, AffinityIP, []byte{192, 0, 2, 1}, 1791},
		{"v4 ip-port", "192.0.2.1", 40000, AffinityIPPort, []byte{192, 0, 2, 1, 0x9c, 0x40}, 2544},
		{"v4 network", "192.0.2.1", 40000, AffinityNetwork, []byte{192, 0, 2}, 3904},
		{"v4-mapped counts as v4", "::ffff:192.0.2.1", 0, AffinityIP, []byte{192, 0, 2, 1}, 1791},
		{"v6 ip", "2001:db8::1", 40000, AffinityIP, netip.MustParseAddr("2001:db8::1").AsSlice(), 2792},
		{"v6 ip-port", "2001:db8::1", 40000, AffinityIPPort, append(netip.MustParseAddr("2001:db8::1").AsSlice(), 0x9c, 0x40), 3962},
		{"v6 network", "2001:db8::1", 40000, AffinityNetwork, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0}, 1776},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BucketOf(netip.MustParseAddr(tt.src), tt.port, tt.aff)
			if want := uint16(xxhash.Sum64(tt.key) % 4096); got != want {
				t.Errorf("BucketOf = %d, want xxhash(%x)%%4096 = %d", got, tt.key, want)
			}
			if got != tt.pinned {
				t.Errorf("BucketOf = %d, pinned %d: the key layout changed, which breaks mixed-version farms", got, tt.pinned)
			}
		})
	}
}

func TestBucketOfGrouping(t *testing.T) {
	b := func(s string, port uint16, aff Affinity) uint16 { return BucketOf(netip.MustParseAddr(s), port, aff) }
	same := []struct {
		name string
		x, y uint16
	}{
		{"network /24 groups a v4 network", b("192.0.2.1", 1, AffinityNetwork), b("192.0.2.254", 2, AffinityNetwork)},
		{"network /64 groups a v6 network", b("2001:db8:0:1::1", 1, AffinityNetwork), b("2001:db8:0:1:ffff::9", 2, AffinityNetwork)},
		{"ip ignores the port", b("192.0.2.1", 1, AffinityIP), b("192.0.2.1", 2, AffinityIP)},
	}
	for _, tt := range same {
		t.Run(tt.name, func(t *testing.T) {
			if tt.x != tt.y {
				t.Errorf("buckets %d and %d differ", tt.x, tt.y)
			}
		})
	}
	// ip-port spreads one client's connections: over 64 ports it must hit
	// many buckets (a hash that ignored the port would hit one).
	seen := map[uint16]bool{}
	for p := uint16(40000); p < 40064; p++ {
		seen[b("192.0.2.1", p, AffinityIPPort)] = true
	}
	if len(seen) < 48 {
		t.Errorf("ip-port: 64 ports of one client hit only %d buckets", len(seen))
	}
}

// TestBucketSpread is a coarse balance check: random clients must fill the
// buckets evenly enough that shares computed over buckets mean something.
func TestBucketSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 4096 * 64
	var count [4096]int
	for range n {
		var a4 [4]byte
		v := r.Uint32()
		a4[0], a4[1], a4[2], a4[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		count[BucketOf(netip.AddrFrom4(a4), 0, AffinityIP)]++
	}
	lo, hi := n, 0
	for _, c := range count {
		lo, hi = min(lo, c), max(hi, c)
	}
	if lo < 20 || hi > 120 { // mean 64, sd 8: these are ~5.5 sd away
		t.Errorf("bucket counts range %d..%d around a mean of 64", lo, hi)
	}
}

func TestBucketOfAllocs(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { _ = BucketOf(v6, 1, AffinityIPPort) }); n != 0 {
		t.Errorf("BucketOf allocates %v times", n)
	}
}
