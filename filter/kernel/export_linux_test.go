package kernel

import (
	"time"

	"github.com/google/nftables/expr"

	"github.com/webfarm/farm/filter"
)

// BucketExprs gives the external tests the engine's bucket expressions:
// they leave the client's bucket in NFT_REG_1.
func BucketExprs(v6 bool, aff filter.Affinity) []expr.Any {
	if v6 {
		return familyIPv6.bucketExprs(aff)
	}
	return familyIPv4.bucketExprs(aff)
}

// SetRelease sets how often e dumps its flows while buckets are held and
// how long after a loss a dump may release a bucket (before Run).
func SetRelease(e *Engine, every, settle time.Duration) {
	e.releaseEvery, e.settle = every, settle
}

// ExpireSocketDeadline sets the deadline of e's netlink socket to now, as
// if its last exchange were long past (Run must be serving).
func ExpireSocketDeadline(e *Engine) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nl.raw.SetDeadline(time.Now())
}
