package windivert

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"

	"github.com/webfarm/farm/filter"
)

// FlowKey is a flow's 5-tuple as seen inbound: client (source) address,
// VIP (destination) address, as 16-byte IPv6 or IPv4-mapped addresses,
// source and destination ports (big endian) and the IP protocol. An array
// rather than a struct, so it has no padding and hashes as its bytes.
type FlowKey [flowKeyLen]byte

const flowKeyLen = 16 + 16 + 2 + 2 + 1 + 1 // the last byte stays 0

// KeyOf returns the flow key of a parsed packet.
func KeyOf(p *filter.Packet) FlowKey {
	var k FlowKey
	src, dst := p.Src.As16(), p.Dst.As16()
	copy(k[0:16], src[:])
	copy(k[16:32], dst[:])
	binary.BigEndian.PutUint16(k[32:34], p.SrcPort)
	binary.BigEndian.PutUint16(k[34:36], p.DstPort)
	k[36] = p.Proto
	return k
}

// Class is what the engine last saw of a flow; each class has its own idle
// timeout and its own LRU list. When the table is full, the least recently
// used flow of the lowest class goes first: flows that are closing, then
// half-open ones (a SYN flood evicts only itself), then UDP, and
// established TCP flows last.
type Class uint8

const (
	classFree Class = iota // on the free list
	// ClassClosing: a TCP flow after a FIN or RST.
	ClassClosing
	// ClassSYN: a TCP flow whose SYN was accepted, nothing more seen yet.
	ClassSYN
	// ClassUDPNew: a UDP flow with one datagram.
	ClassUDPNew
	// ClassUDP: a UDP flow with more than one datagram.
	ClassUDP
	// ClassEstablished: a TCP flow past its handshake.
	ClassEstablished
	numClasses
)

var classNames = [numClasses]string{"free", "closing", "syn", "udp-new", "udp", "established"}

// String returns the class's short name, for logs and metrics.
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class?"
}

// Flow refers to a flow in a FlowTable, valid until the flow is deleted
// or evicted; 0 is no flow.
type Flow uint32

// FlowTable maps 5-tuples to the node that owns the flow, with an idle
// timeout per Class and a bounded size: Windows has no conntrack, so the
// engine remembers the flows it accepted itself. Every entry, index and
// list is allocated by NewFlowTable; lookups, inserts, updates and expiry
// allocate nothing. It is not safe for concurrent use: the engine's packet
// loop owns it.
//
// Entries live in one slice, chained per hash bucket through 32-bit
// indexes (index 0 is "none"), and sit on one doubly linked LRU list per
// class, most recently used first; a class's entries share one timeout, so
// each list is also ordered by expiry and Expire stops at the first live
// entry from the tail. The hash is maphash with a per-table random seed:
// clients choose their addresses and ports, so chains must not be
// predictable.
type FlowTable struct {
	seed     maphash.Seed
	mask     uint32
	heads    []uint32
	ents     []flowEntry
	free     uint32
	lists    [numClasses]lruList
	counts   [numClasses]int
	timeouts [numClasses]int64
	n        int

	evicted, expired uint64
}

type flowEntry struct {
	last  int64  // when last seen (the caller's clock, ns)
	next  uint32 // hash chain, or free list
	newer uint32 // LRU neighbours in the class list
	older uint32
	key   FlowKey
	class Class
	owner uint8
}

type lruList struct{ head, tail uint32 }

// NewFlowTable returns an empty table for up to size flows (at least 1,
// at most MaxFlowsLimit), with the timeouts t (zero fields: defaults).
func NewFlowTable(size int, t Timeouts) *FlowTable {
	size = min(max(size, 1), MaxFlowsLimit)
	nb := 1 << bits.Len(uint(size-1)) // buckets: a power of two >= size
	ft := &FlowTable{
		seed:  maphash.MakeSeed(),
		mask:  uint32(nb - 1),
		heads: make([]uint32, nb),
		ents:  make([]flowEntry, size+1),
	}
	t = t.withDefaults()
	ft.timeouts = [numClasses]int64{
		ClassClosing:     int64(t.Closing),
		ClassSYN:         int64(t.SYN),
		ClassUDPNew:      int64(t.UDPNew),
		ClassUDP:         int64(t.UDP),
		ClassEstablished: int64(t.Established),
	}
	for i := size; i >= 1; i-- { // free list in index order
		ft.ents[i].next = ft.free
		ft.free = uint32(i)
	}
	return ft
}

// Len returns how many flows the table holds.
func (t *FlowTable) Len() int { return t.n }

// Cap returns how many flows the table can hold.
func (t *FlowTable) Cap() int { return len(t.ents) - 1 }

// Count returns how many flows of class c the table holds.
func (t *FlowTable) Count(c Class) int {
	if c >= numClasses {
		return 0
	}
	return t.counts[c]
}

// Evicted counts the flows removed to make room for new ones.
func (t *FlowTable) Evicted() uint64 { return t.evicted }

// Expired counts the flows removed by their idle timeout.
func (t *FlowTable) Expired() uint64 { return t.expired }

// Owner returns the node that owns flow f.
func (t *FlowTable) Owner(f Flow) uint8 { return t.ents[f].owner }

// ClassOf returns flow f's class.
func (t *FlowTable) ClassOf(f Flow) Class { return t.ents[f].class }

func (t *FlowTable) bucket(k *FlowKey) uint32 {
	return uint32(maphash.Bytes(t.seed, k[:])) & t.mask
}

// Lookup returns the flow with key k. A flow idle for longer than its
// class's timeout at now is removed and not returned.
func (t *FlowTable) Lookup(k *FlowKey, now int64) (Flow, bool) {
	for i := t.heads[t.bucket(k)]; i != 0; i = t.ents[i].next {
		e := &t.ents[i]
		if e.key != *k {
			continue
		}
		if now-e.last > t.timeouts[e.class] {
			t.expired++
			t.delete(i)
			return 0, false
		}
		return Flow(i), true
	}
	return 0, false
}

// Insert adds a flow with key k, owned by owner, in class c (not
// classFree), seen at now, and returns it. The key must not be in the
// table (Lookup first). When the table is full, the least recently used
// flow of the lowest class is evicted to make room.
func (t *FlowTable) Insert(k *FlowKey, owner uint8, c Class, now int64) Flow {
	if c == classFree || c >= numClasses {
		c = ClassEstablished
	}
	if t.free == 0 {
		t.evict()
	}
	i := t.free
	e := &t.ents[i]
	t.free = e.next
	b := t.bucket(k)
	*e = flowEntry{last: now, next: t.heads[b], key: *k, class: c, owner: owner}
	t.heads[b] = i
	t.pushFront(i)
	t.n++
	return Flow(i)
}

// Touch records that flow f was seen at now, in class c (its class so
// far, or a new one), making it the most recently used of its class.
func (t *FlowTable) Touch(f Flow, c Class, now int64) {
	e := &t.ents[f]
	if c == classFree || c >= numClasses {
		c = e.class
	}
	e.last = now
	if e.class == c && t.lists[c].head == uint32(f) {
		return
	}
	t.unlink(uint32(f))
	e.class = c
	t.pushFront(uint32(f))
}

// Delete removes flow f.
func (t *FlowTable) Delete(f Flow) {
	if f != 0 && int(f) < len(t.ents) && t.ents[f].class != classFree {
		t.delete(uint32(f))
	}
}

// Expire removes up to limit flows that were idle for longer than their
// class's timeout at now, oldest first, and returns how many it removed.
// The engine calls it between batches with a small limit, so no batch
// waits long behind a sweep.
func (t *FlowTable) Expire(now int64, limit int) int {
	removed := 0
	for c := ClassClosing; c < numClasses && removed < limit; c++ {
		for removed < limit {
			i := t.lists[c].tail
			if i == 0 || now-t.ents[i].last <= t.timeouts[c] {
				break
			}
			t.delete(i)
			t.expired++
			removed++
		}
	}
	return removed
}

// ExpireAll removes every flow idle past its timeout at now.
func (t *FlowTable) ExpireAll(now int64) int { return t.Expire(now, t.Cap()) }

// Range calls fn for each flow, most recently used first within each
// class, until fn returns false. fn must not change the table.
func (t *FlowTable) Range(fn func(k FlowKey, owner uint8, c Class, last int64) bool) {
	for c := numClasses - 1; c > classFree; c-- {
		for i := t.lists[c].head; i != 0; i = t.ents[i].older {
			e := &t.ents[i]
			if !fn(e.key, e.owner, e.class, e.last) {
				return
			}
		}
	}
}

// evict removes the least recently used flow of the lowest class.
func (t *FlowTable) evict() {
	for c := ClassClosing; c < numClasses; c++ {
		if i := t.lists[c].tail; i != 0 {
			t.delete(i)
			t.evicted++
			return
		}
	}
}

// delete unlinks entry i from its hash chain and LRU list and frees it.
func (t *FlowTable) delete(i uint32) {
	e := &t.ents[i]
	b := t.bucket(&e.key)
	if t.heads[b] == i {
		t.heads[b] = e.next
	} else {
		for p := t.heads[b]; p != 0; p = t.ents[p].next {
			if t.ents[p].next == i {
				t.ents[p].next = e.next
				break
			}
		}
	}
	t.unlink(i)
	*e = flowEntry{next: t.free}
	t.free = i
	t.n--
}

// pushFront puts entry i at the head of its class's list.
func (t *FlowTable) pushFront(i uint32) {
	e := &t.ents[i]
	l := &t.lists[e.class]
	e.newer, e.older = 0, l.head
	if l.head != 0 {
		t.ents[l.head].newer = i
	} else {
		l.tail = i
	}
	l.head = i
	t.counts[e.class]++
}

// unlink takes entry i off its class's list.
func (t *FlowTable) unlink(i uint32) {
	e := &t.ents[i]
	l := &t.lists[e.class]
	if e.newer != 0 {
		t.ents[e.newer].older = e.older
	} else {
		l.head = e.older
	}
	if e.older != 0 {
		t.ents[e.older].newer = e.newer
	} else {
		l.tail = e.newer
	}
	e.newer, e.older = 0, 0
	t.counts[e.class]--
}
