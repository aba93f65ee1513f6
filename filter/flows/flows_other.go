//go:build !linux

package flows

import (
	"context"
	"errors"
	"net/netip"
)

// count has nothing to ask off Linux: a drain there ends at its timeout.
func count(context.Context, uint32, uint32, []netip.Addr) (int, error) {
	return 0, errors.New("count flows: flow counting needs Linux conntrack (netfilter), which this system does not have")
}

// tuples has nothing to ask off Linux.
func tuples(context.Context, uint32, uint32) ([]Tuple, error) {
	return nil, errors.New("list flows: needs Linux conntrack (netfilter), which this system does not have")
}
