package filter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/webfarm/farm/farm/table"
)

// BucketSeed is the farm's jhash seed, the same on every node, engine and
// platform ("farm" in ASCII). It must not be 0: nft treats a hash without
// a seed as "pick a random one", and that rule would then bucket clients
// differently on every node.
const BucketSeed uint32 = 0x6661726d

// MaxBucketKey is the longest client key, in bytes (IPv6 address + port).
const MaxBucketKey = 20

// BucketOf returns the bucket a client falls into under affinity a. Every
// node (Linux or Windows, kernel or NFQUEUE engine) must compute the same
// value for the same client, so this is exactly what the Linux kernel's
// nft hash expression computes for the key below (filter/kernel has the
// kernel compute it):
//
//	bucket = reciprocal_scale(jhash(key, len(key), BucketSeed), 4096)
//	       = uint32((uint64(jhash(...)) * 4096) >> 32)
//
// with jhash the kernel's lookup3 (include/linux/jhash.h, see jhash) and
// reciprocal_scale as net/netfilter/nft_hash.c applies it (not h % 4096).
// The key is in network byte order, as the kernel loads it from the packet:
//
//	ip       IPv4: saddr (4 bytes)          jhash ip saddr
//	         IPv6: saddr (16 bytes)         jhash ip6 saddr
//	ip-port  IPv4: saddr, sport, 0, 0 (8)   jhash ip saddr . tcp sport
//	         IPv6: saddr, sport, 0, 0 (20)  jhash ip6 saddr . tcp sport
//	network  IPv4: saddr[0:3] (3 bytes)     jhash @nh,96,24
//	         IPv6: saddr[0:8] (8 bytes)     jhash @nh,64,64
//
// (each followed by "mod 4096 seed 0x6661726d" in nft syntax). The two zero
// bytes after the port are nft's concatenation padding: every field of a
// concatenation takes whole 4-byte registers, and the 2-byte port load
// zeroes the rest of its register; the hash reads them too. The /24 and
// /64 keys are the prefix bytes themselves: the often seen `ip saddr &
// 255.255.255.0` hashes 4 bytes (the last one zero) and gives other
// buckets. The UDP source port sits where the TCP one does.
//
// IPv4-mapped IPv6 addresses count as IPv4, wherever they come from.
// srcPort is ignored unless a is AffinityIPPort. The key is built on the
// stack: the packet path calls this too and allocates nothing.
func BucketOf(src netip.Addr, srcPort uint16, a Affinity) uint16 {
	var key [MaxBucketKey]byte
	n := bucketKey(&key, src, srcPort, a)
	return scaleBucket(jhash(key[:n], BucketSeed))
}

// bucketKey writes the key of BucketOf into key and returns its length.
func bucketKey(key *[MaxBucketKey]byte, src netip.Addr, srcPort uint16, a Affinity) int {
	src = src.Unmap()
	var n int
	if src.Is4() {
		a4 := src.As4()
		copy(key[:], a4[:])
		n = 4
		if a == AffinityNetwork {
			n = 3
		}
	} else {
		a16 := src.As16()
		copy(key[:], a16[:])
		n = 16
		if a == AffinityNetwork {
			n = 8
		}
	}
	if a == AffinityIPPort {
		binary.BigEndian.PutUint16(key[n:], srcPort)
		key[n+2], key[n+3] = 0, 0
		n += 4
	}
	return n
}

// scaleBucket maps a 32-bit hash onto the table's buckets as the kernel's
// reciprocal_scale does: the high bits decide, so it is not h % Buckets.
func scaleBucket(h uint32) uint16 {
	return uint16((uint64(h) * table.Buckets) >> 32)
}

// jhashInitval is lookup3's arbitrary initial value (JHASH_INITVAL).
const jhashInitval = 0xdeadbeef

// jhash is the Linux kernel's jhash(key, length, initval) (Bob Jenkins'
// lookup3, include/linux/jhash.h): 12-byte blocks read as three 32-bit
// words, with the last 1..12 bytes zero-padded and finally mixed; an empty
// key returns the initial state. The kernel reads words in CPU byte order;
// this reads them little endian, as on x86 and arm64 (a big-endian kernel
// would bucket differently: do not mix one into a farm).
func jhash(k []byte, initval uint32) uint32 {
	a := jhashInitval + uint32(len(k)) + initval
	b, c := a, a
	for len(k) > 12 {
		a += binary.LittleEndian.Uint32(k[0:4])
		b += binary.LittleEndian.Uint32(k[4:8])
		c += binary.LittleEndian.Uint32(k[8:12])
		// __jhash_mix
		a -= c
		a ^= bits.RotateLeft32(c, 4)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 6)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 8)
		b += a
		a -= c
		a ^= bits.RotateLeft32(c, 16)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 19)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 4)
		b += a
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	// The kernel's fall-through switch adds each remaining byte at its
	// place in a, b or c: the same as adding zero-padded words.
	var tail [12]byte
	copy(tail[:], k)
	a += binary.LittleEndian.Uint32(tail[0:4])
	b += binary.LittleEndian.Uint32(tail[4:8])
	c += binary.LittleEndian.Uint32(tail[8:12])
	// __jhash_final
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}
