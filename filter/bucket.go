package filter

import (
	"net/netip"

	"github.com/cespare/xxhash/v2"

	"github.com/webfarm/farm/farm/table"
)

// BucketOf returns the bucket a client falls into under affinity a: every
// node (Linux or Windows) must compute the same value for the same client,
// so the key bytes are fixed here:
//   - ip: the source address (4 bytes for IPv4, 16 for IPv6);
//   - ip-port: the source address followed by the source port, big endian;
//   - network: the first 3 bytes (/24) of an IPv4 or 8 bytes (/64) of an
//     IPv6 source.
//
// The bucket is xxhash64(key) mod table.Buckets. IPv4-mapped IPv6
// addresses count as IPv4, wherever they come from. srcPort is ignored
// unless a is AffinityIPPort. The key is built on the stack: the packet
// path calls this too and allocates nothing.
func BucketOf(src netip.Addr, srcPort uint16, a Affinity) uint16 {
	src = src.Unmap()
	var key [18]byte
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
		key[n] = byte(srcPort >> 8)
		key[n+1] = byte(srcPort)
		n += 2
	}
	return uint16(xxhash.Sum64(key[:n]) % table.Buckets)
}
