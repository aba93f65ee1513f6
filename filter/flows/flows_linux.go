package flows

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ti-mo/conntrack"
)

// count dumps the entries carrying the mark (the kernel filters on it) and
// keeps the live ones towards vips.
func count(ctx context.Context, mark, mask uint32, vips []netip.Addr) (int, error) {
	if len(vips) == 0 {
		return 0, nil
	}
	flows, err := dump(ctx, mark, mask)
	if err != nil {
		return 0, fmt.Errorf("count flows: %w", err)
	}
	n := 0
	for i := range flows {
		if live(entryOf(&flows[i]), vips) {
			n++
		}
	}
	return n, nil
}

// tuples dumps the entries carrying the mark and returns their original
// tuples.
func tuples(ctx context.Context, mark, mask uint32) ([]Tuple, error) {
	flows, err := dump(ctx, mark, mask)
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	out := make([]Tuple, len(flows))
	for i := range flows {
		o := &flows[i].TupleOrig
		out[i] = Tuple{Proto: o.Proto.Protocol, Src: o.IP.SourceAddress, SrcPort: o.Proto.SourcePort,
			Dst: o.IP.DestinationAddress, DstPort: o.Proto.DestinationPort}
	}
	return out, nil
}

// dump returns the conntrack entries with mark&mask == mark. One dump
// (family unspecified) covers IPv4 and IPv6: a dump per family needs Linux
// 4.20, and older kernels would answer each of them with every entry,
// listing IPv4 flows twice.
func dump(ctx context.Context, mark, mask uint32) ([]conntrack.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink socket: %w (needs CAP_NET_ADMIN and nf_conntrack_netlink)", err)
	}
	// The library has no deadline of its own; closing the socket unblocks
	// a dump in progress. Close runs exactly once: here, or in the AfterFunc.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		if stop() {
			c.Close()
		}
	}()

	f := conntrack.NewFilter().Mark(mark).MarkMask(mask) // no Family: both
	flows, err := c.DumpFilter(f, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dump conntrack entries with mark 0x%08x/0x%08x: %w", mark, mask, ctx.Err())
		}
		return nil, fmt.Errorf("dump conntrack entries with mark 0x%08x/0x%08x: %w", mark, mask, err)
	}
	return flows, nil
}

// entryOf takes what live needs from a dumped flow.
func entryOf(f *conntrack.Flow) entry {
	e := entry{proto: f.TupleOrig.Proto.Protocol, dst: f.TupleOrig.IP.DestinationAddress}
	if f.ProtoInfo.TCP != nil {
		e.tcpState = f.ProtoInfo.TCP.State
	}
	return e
}
