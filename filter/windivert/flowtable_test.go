package windivert

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// testKey returns a distinct IPv4 flow key for n.
func testKey(n uint32) FlowKey {
	var k FlowKey
	k[10], k[11] = 0xff, 0xff
	binary.BigEndian.PutUint32(k[12:16], 0xc0000000|n>>16)
	k[26], k[27] = 0xff, 0xff
	copy(k[28:32], []byte{10, 0, 0, 100})
	binary.BigEndian.PutUint16(k[32:34], uint16(n))
	binary.BigEndian.PutUint16(k[34:36], 80)
	k[36] = 6
	return k
}

var testTimeouts = Timeouts{SYN: 30 * time.Second, Established: time.Hour, Closing: 10 * time.Second, UDPNew: 30 * time.Second, UDP: 2 * time.Minute}

const sec = int64(time.Second)

func TestFlowTableBasics(t *testing.T) {
	ft := NewFlowTable(8, testTimeouts)
	if ft.Cap() != 8 || ft.Len() != 0 {
		t.Fatalf("cap %d len %d, want 8 and 0", ft.Cap(), ft.Len())
	}
	k1, k2 := testKey(1), testKey(2)
	if _, ok := ft.Lookup(&k1, 0); ok {
		t.Fatal("empty table found a flow")
	}
	f1 := ft.Insert(&k1, 7, ClassSYN, 0)
	f2 := ft.Insert(&k2, 7, ClassEstablished, 0)
	if f1 == 0 || f2 == 0 || f1 == f2 {
		t.Fatalf("flows %d %d: want distinct non-zero", f1, f2)
	}
	if got, ok := ft.Lookup(&k1, sec); !ok || got != f1 || ft.Owner(got) != 7 || ft.ClassOf(got) != ClassSYN {
		t.Fatalf("lookup k1 = %d %v", got, ok)
	}
	ft.Touch(f1, ClassEstablished, 2*sec)
	if ft.ClassOf(f1) != ClassEstablished || ft.Count(ClassEstablished) != 2 || ft.Count(ClassSYN) != 0 {
		t.Fatalf("after touch: class %v, counts est %d syn %d", ft.ClassOf(f1), ft.Count(ClassEstablished), ft.Count(ClassSYN))
	}
	ft.Delete(f2)
	if _, ok := ft.Lookup(&k2, 2*sec); ok || ft.Len() != 1 {
		t.Fatalf("deleted flow still found, len %d", ft.Len())
	}
	ft.Delete(f2) // twice is harmless
	ft.Delete(0)
	if ft.Len() != 1 {
		t.Fatalf("len %d after double delete, want 1", ft.Len())
	}
}

func TestFlowTableTimeouts(t *testing.T) {
	cases := []struct {
		class Class
		ttl   time.Duration
	}{
		{ClassSYN, testTimeouts.SYN},
		{ClassEstablished, testTimeouts.Established},
		{ClassClosing, testTimeouts.Closing},
		{ClassUDPNew, testTimeouts.UDPNew},
		{ClassUDP, testTimeouts.UDP},
	}
	for _, c := range cases {
		t.Run(c.class.String(), func(t *testing.T) {
			ft := NewFlowTable(4, testTimeouts)
			k := testKey(1)
			ft.Insert(&k, 1, c.class, 0)
			if _, ok := ft.Lookup(&k, int64(c.ttl)); !ok {
				t.Fatalf("gone at exactly its timeout %v", c.ttl)
			}
			if _, ok := ft.Lookup(&k, int64(c.ttl)+1); ok {
				t.Fatalf("still there after its timeout %v", c.ttl)
			}
			if ft.Len() != 0 || ft.Expired() != 1 {
				t.Fatalf("len %d expired %d, want 0 and 1", ft.Len(), ft.Expired())
			}
		})
	}
}

func TestFlowTableTouchRestartsTimer(t *testing.T) {
	ft := NewFlowTable(4, testTimeouts)
	k := testKey(1)
	f := ft.Insert(&k, 1, ClassClosing, 0)
	for now := int64(0); now < 100*sec; now += 5 * sec { // closing flow still talking
		got, ok := ft.Lookup(&k, now)
		if !ok || got != f {
			t.Fatalf("lost at %ds", now/sec)
		}
		ft.Touch(f, 0, now) // 0: keep the class
	}
	if ft.ClassOf(f) != ClassClosing {
		t.Fatalf("class %v, want closing", ft.ClassOf(f))
	}
}

func TestFlowTableExpire(t *testing.T) {
	ft := NewFlowTable(16, testTimeouts)
	for i := range uint32(10) {
		k := testKey(i)
		c := ClassSYN
		if i%2 == 1 {
			c = ClassEstablished
		}
		ft.Insert(&k, 1, c, int64(i)*sec)
	}
	// At 40s the SYN flows inserted at 0, 2, 4, 6, 8 s have been idle
	// more than 30 s up to the one at 8 s (32 s): those at 0..8 go.
	now := 40 * sec
	if n := ft.Expire(now, 2); n != 2 {
		t.Fatalf("Expire with limit 2 removed %d", n)
	}
	if n := ft.ExpireAll(now); n != 3 {
		t.Fatalf("ExpireAll removed %d more, want 3", n)
	}
	if ft.Count(ClassSYN) != 0 || ft.Count(ClassEstablished) != 5 {
		t.Fatalf("syn %d est %d, want 0 and 5", ft.Count(ClassSYN), ft.Count(ClassEstablished))
	}
	if n := ft.ExpireAll(now); n != 0 {
		t.Fatalf("second ExpireAll removed %d", n)
	}
	for i := uint32(1); i < 10; i += 2 {
		k := testKey(i)
		if _, ok := ft.Lookup(&k, now); !ok {
			t.Fatalf("established flow %d expired", i)
		}
	}
}

// TestFlowTableEviction checks the eviction order of a full table: the
// lowest class first (closing, SYN, UDP, established), least recently
// used first within a class.
func TestFlowTableEviction(t *testing.T) {
	ft := NewFlowTable(4, testTimeouts)
	est1, est2, syn1, udp1 := testKey(1), testKey(2), testKey(3), testKey(4)
	ft.Insert(&est1, 1, ClassEstablished, 0)
	ft.Insert(&est2, 1, ClassEstablished, 1)
	ft.Insert(&syn1, 1, ClassSYN, 2)
	ft.Insert(&udp1, 1, ClassUDP, 3)
	steps := []struct {
		name  string
		touch *FlowKey // touched before the insert
		key   FlowKey
		class Class
		gone  FlowKey
	}{
		{name: "a closing flow evicts the half-open one", key: testKey(10), class: ClassClosing, gone: syn1},
		{name: "a SYN evicts the closing flow", key: testKey(11), class: ClassSYN, gone: testKey(10)},
		{name: "a SYN flood evicts only itself", key: testKey(12), class: ClassSYN, gone: testKey(11)},
		{name: "an established flow evicts the half-open one", key: testKey(13), class: ClassEstablished, gone: testKey(12)},
		{name: "then UDP goes before established", key: testKey(14), class: ClassEstablished, gone: udp1},
		{name: "then the least recently used established", touch: &est1, key: testKey(15), class: ClassEstablished, gone: est2},
	}
	now := int64(10)
	for _, s := range steps {
		now++
		if s.touch != nil {
			ft.Touch(mustLookup(t, ft, *s.touch, now), 0, now)
		}
		before := ft.Evicted()
		ft.Insert(&s.key, 1, s.class, now)
		if _, ok := ft.Lookup(&s.gone, now); ok || ft.Evicted() != before+1 {
			t.Fatalf("%s: flow %x still there (evicted %d)", s.name, s.gone[32:34], ft.Evicted()-before)
		}
		if _, ok := ft.Lookup(&s.key, now); !ok {
			t.Fatalf("%s: the new flow is not there", s.name)
		}
	}
	if _, ok := ft.Lookup(&est1, now); !ok || ft.Len() != 4 {
		t.Fatalf("recently used established flow evicted (len %d)", ft.Len())
	}
}

func mustLookup(t *testing.T, ft *FlowTable, k FlowKey, now int64) Flow {
	t.Helper()
	f, ok := ft.Lookup(&k, now)
	if !ok {
		t.Fatalf("flow %x not found", k)
	}
	return f
}

// TestFlowTableAgainstMap runs random operations against a map model and
// checks the invariants (chains, lists, counts) after each.
func TestFlowTableAgainstMap(t *testing.T) {
	const size = 64
	ft := NewFlowTable(size, testTimeouts)
	type model struct {
		class Class
		last  int64
	}
	m := map[FlowKey]model{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := int64(0)
	for step := range 20000 {
		now += rng.Int64N(int64(2 * time.Second))
		k := testKey(rng.Uint32N(200))
		mv, inModel := m[k]
		if inModel && now-mv.last > ft.timeouts[mv.class] {
			delete(m, k)
			inModel = false
		}
		f, ok := ft.Lookup(&k, now)
		if ok != inModel {
			t.Fatalf("step %d: lookup %v, model %v", step, ok, inModel)
		}
		switch op := rng.IntN(10); {
		case ok && op < 2:
			ft.Delete(f)
			delete(m, k)
		case ok:
			c := Class(1 + rng.IntN(int(numClasses)-1))
			ft.Touch(f, c, now)
			m[k] = model{c, now}
		default:
			if len(m) == size {
				// The table evicts one: drop whatever it dropped from the
				// model, found by looking every model key up.
				ft.Insert(&k, 1, ClassSYN, now)
				for mk := range m {
					if _, found := ft.Lookup(&mk, now); !found {
						delete(m, mk)
					}
				}
			} else {
				ft.Insert(&k, 1, ClassSYN, now)
			}
			m[k] = model{ClassSYN, now}
		}
		if step%97 == 0 {
			ft.Expire(now, 5)
			for mk, mv := range m {
				if _, found := ft.Lookup(&mk, now); !found {
					if now-mv.last <= ft.timeouts[mv.class] {
						t.Fatalf("step %d: live flow lost by Expire", step)
					}
					delete(m, mk)
				}
			}
		}
		checkInvariants(t, ft, len(m))
	}
}

func checkInvariants(t *testing.T, ft *FlowTable, want int) {
	t.Helper()
	if ft.Len() != want {
		t.Fatalf("len %d, model %d", ft.Len(), want)
	}
	total := 0
	for c := ClassClosing; c < numClasses; c++ {
		n := 0
		var prev uint32
		for i := ft.lists[c].head; i != 0; i = ft.ents[i].older {
			e := &ft.ents[i]
			if e.class != c || e.newer != prev {
				t.Fatalf("list %v broken at %d", c, i)
			}
			if prev != 0 && e.last > ft.ents[prev].last {
				t.Fatalf("list %v out of LRU order at %d", c, i)
			}
			prev = i
			n++
		}
		if prev != ft.lists[c].tail || n != ft.counts[c] {
			t.Fatalf("list %v: %d entries, count %d, tail ok %v", c, n, ft.counts[c], prev == ft.lists[c].tail)
		}
		total += n
	}
	chained := 0
	for b, head := range ft.heads {
		for i := head; i != 0; i = ft.ents[i].next {
			if ft.bucket(&ft.ents[i].key) != uint32(b) {
				t.Fatalf("entry %d in the wrong chain", i)
			}
			chained++
		}
	}
	if total != want || chained != want {
		t.Fatalf("lists hold %d, chains %d, want %d", total, chained, want)
	}
}

func TestFlowTableAllocs(t *testing.T) {
	ft := NewFlowTable(1024, testTimeouts)
	keys := make([]FlowKey, 4096)
	for i := range keys {
		keys[i] = testKey(uint32(i))
	}
	i := 0
	now := int64(0)
	allocs := testing.AllocsPerRun(10000, func() {
		k := &keys[i%len(keys)]
		i++
		now += 1000
		if f, ok := ft.Lookup(k, now); ok {
			ft.Touch(f, ClassEstablished, now)
		} else {
			ft.Insert(k, 1, ClassSYN, now) // evicts once full
		}
		ft.Expire(now, 4)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup/insert/expire, want 0", allocs)
	}
}

// BenchmarkFlowTable measures the per-packet operations at several fill
// levels of a default-sized table: a hit (lookup and touch, the common
// case: a packet of a known flow), a miss, and an insert with eviction
// (a full table taking a new flow).
func BenchmarkFlowTable(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16, DefaultMaxFlows} {
		ft := NewFlowTable(DefaultMaxFlows, DefaultTimeouts)
		keys := make([]FlowKey, n)
		for i := range keys {
			keys[i] = testKey(uint32(i))
			ft.Insert(&keys[i], 1, ClassEstablished, 0)
		}
		b.Run(fmt.Sprintf("hit/flows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := &keys[i%n]
				i++
				if f, ok := ft.Lookup(k, 1); ok {
					ft.Touch(f, ClassEstablished, 1)
				}
			}
		})
		b.Run(fmt.Sprintf("miss/flows=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			miss := make([]FlowKey, 1024)
			for i := range miss {
				miss[i] = testKey(uint32(n + i))
			}
			i := 0
			for b.Loop() {
				ft.Lookup(&miss[i%len(miss)], 1)
				i++
			}
		})
	}
	b.Run("insert-evict/full", func(b *testing.B) {
		ft := NewFlowTable(DefaultMaxFlows, DefaultTimeouts)
		for i := range DefaultMaxFlows {
			k := testKey(uint32(i))
			ft.Insert(&k, 1, ClassSYN, 0)
		}
		b.ReportAllocs()
		n := uint32(1 << 24) // every key new: each iteration misses, inserts and evicts
		for b.Loop() {
			k := testKey(n)
			n++
			if _, ok := ft.Lookup(&k, 1); !ok {
				ft.Insert(&k, 1, ClassSYN, 1)
			}
		}
		if ft.Evicted() == 0 {
			b.Fatal("nothing was evicted")
		}
	})
}
