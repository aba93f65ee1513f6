package filter

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestJhash pins jhash to the kernel's: the vectors come from
// include/linux/jhash.h compiled as C on x86-64 (key byte i = i*37+11,
// seed BucketSeed), for every length around the 12-byte blocks.
func TestJhash(t *testing.T) {
	want := []uint32{
		0x450f315c, 0x3b56cb40, 0xeb524e02, 0x608232a4, 0x2e9a7dd7, 0x85ad82a3, 0x9111963f,
		0xfb087d58, 0x732ad267, 0xf9dd514d, 0x87abfa1b, 0x789586b8, 0xf61806b1, 0xcf770f85,
		0xf295a693, 0x7d453e3f, 0xa0cad2da, 0xb29af17f, 0x02ecb235, 0x613d967e, 0x6864a19c,
		0x9a3102d1, 0xa8a07214, 0x44c1159c, 0x997ded15, 0xe74d6718,
	}
	var buf [32]byte
	for i := range buf {
		buf[i] = byte(i*37 + 11)
	}
	for n, w := range want {
		if got := jhash(buf[:n], BucketSeed); got != w {
			t.Errorf("jhash(%d bytes) = %#08x, want %#08x", n, got, w)
		}
	}
}

func TestScaleBucket(t *testing.T) {
	for _, tt := range []struct {
		h    uint32
		want uint16
	}{{0, 0}, {0xfffff, 0}, {0x100000, 1}, {0x80000000, 2048}, {0xffffffff, 4095}} {
		if got := scaleBucket(tt.h); got != tt.want {
			t.Errorf("scaleBucket(%#x) = %d, want %d", tt.h, got, tt.want)
		}
	}
}

// TestBucketOf pins the key layout: Windows and Linux nodes, kernel and
// user-space engines, old and new versions must all put a client in the
// same bucket, so both the key bytes and the resulting buckets (computed by
// the kernel's C jhash) are fixed here. filter/kernel checks the same
// against the running kernel's nft hash expression.
func TestBucketOf(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1").AsSlice()
	tests := []struct {
		name   string
		src    string
		port   uint16
		aff    Affinity
		key    []byte
		pinned uint16
	}{
		{"v4 ip", "192.0.2.1", 40000, AffinityIP, []byte{192, 0, 2, 1}, 815},
		{"v4 ip-port", "192.0.2.1", 40000, AffinityIPPort, []byte{192, 0, 2, 1, 0x9c, 0x40, 0, 0}, 3263},
		{"v4 network", "192.0.2.1", 40000, AffinityNetwork, []byte{192, 0, 2}, 2143},
		{"v4-mapped counts as v4", "::ffff:192.0.2.1", 0, AffinityIP, []byte{192, 0, 2, 1}, 815},
		{"v6 ip", "2001:db8::1", 40000, AffinityIP, v6, 1817},
		{"v6 ip-port", "2001:db8::1", 40000, AffinityIPPort, append(append([]byte(nil), v6...), 0x9c, 0x40, 0, 0), 3536},
		{"v6 network", "2001:db8::1", 40000, AffinityNetwork, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0}, 3677},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var key [MaxBucketKey]byte
			n := bucketKey(&key, netip.MustParseAddr(tt.src), tt.port, tt.aff)
			if string(key[:n]) != string(tt.key) {
				t.Errorf("key = %x, want %x", key[:n], tt.key)
			}
			got := BucketOf(netip.MustParseAddr(tt.src), tt.port, tt.aff)
			if got != tt.pinned {
				t.Errorf("BucketOf = %d, pinned %d: the key layout or hash changed, which breaks mixed farms", got, tt.pinned)
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
// buckets evenly enough that shares computed over buckets mean something,
// for every key kind (the /24 and /64 keys vary only in their prefix).
func TestBucketSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 4096 * 64
	for _, tt := range []struct {
		name string
		v6   bool
		aff  Affinity
	}{{"v4 ip", false, AffinityIP}, {"v4 ip-port", false, AffinityIPPort}, {"v4 network", false, AffinityNetwork},
		{"v6 ip", true, AffinityIP}, {"v6 ip-port", true, AffinityIPPort}, {"v6 network", true, AffinityNetwork}} {
		t.Run(tt.name, func(t *testing.T) {
			var count [4096]int
			for range n {
				var a [16]byte
				v, w := r.Uint64(), r.Uint64()
				for i := range 8 {
					a[i], a[8+i] = byte(v>>(8*i)), byte(w>>(8*i))
				}
				src := netip.AddrFrom16(a)
				if !tt.v6 {
					src = netip.AddrFrom4([4]byte(a[:4]))
				}
				count[BucketOf(src, uint16(r.Uint32()), tt.aff)]++
			}
			lo, hi := n, 0
			for _, c := range count {
				lo, hi = min(lo, c), max(hi, c)
			}
			if lo < 20 || hi > 120 { // mean 64, sd 8: these are ~5.5 sd away
				t.Errorf("bucket counts range %d..%d around a mean of 64", lo, hi)
			}
		})
	}
}

func TestBucketOfAllocs(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, aff := range []Affinity{AffinityIP, AffinityIPPort, AffinityNetwork} {
		if n := testing.AllocsPerRun(100, func() { _ = BucketOf(v6, 1, aff) + BucketOf(v4, 1, aff) }); n != 0 {
			t.Errorf("BucketOf(%v) allocates %v times", aff, n)
		}
	}
}

func BenchmarkBucketOf(b *testing.B) {
	for _, bc := range []struct {
		name string
		src  netip.Addr
		aff  Affinity
	}{
		{"v4-ip", netip.MustParseAddr("192.0.2.1"), AffinityIP},
		{"v4-ip-port", netip.MustParseAddr("192.0.2.1"), AffinityIPPort},
		{"v4-network", netip.MustParseAddr("192.0.2.1"), AffinityNetwork},
		{"v6-ip", netip.MustParseAddr("2001:db8::1"), AffinityIP},
		{"v6-ip-port", netip.MustParseAddr("2001:db8::1"), AffinityIPPort},
		{"v6-network", netip.MustParseAddr("2001:db8::1"), AffinityNetwork},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink uint16
			for i := 0; b.Loop(); i++ {
				sink += BucketOf(bc.src, uint16(i), bc.aff)
			}
			_ = sink
		})
	}
}
