// Package filter is the data path's pure core: it parses the first packet of a
// flow, derives the client key by the rule's affinity, hashes it to a bucket
// and decides whether this node keeps the flow. The OS engines (filter/nfqueue on
// Linux) and rule generation (filter/rules) live beside it and call into it.
//
// # Resetting a dead node's flows
//
// Every node sees every packet of every flow, and only the node that
// accepted a flow's SYN has its conntrack entry. When a node dies, the live
// nodes take over its buckets, but not its flows: the new owner has no entry
// for them and the kernel rules drop their mid-flow packets (a TCP flow must
// start with a bare SYN), so the dead node's clients hang until their own
// timeout, often minutes. To cut that short, the new owner answers such a
// packet with a TCP reset, and the client reconnects at once, to the new
// owner: the decider returns Reset (ReasonOrphan) for a TCP packet that is
// not a bare SYN when this node owns its bucket and the bucket is in the
// Takeover set (Decider.SetTakeover); the engine accepts it without a mark,
// and the local TCP stack, which has no socket for it, replies with a reset
// (RFC 9293: a segment for no connection is answered with RST). The reset
// carries the client's expected sequence number (the segment's
// acknowledgment), so the client accepts it.
//
// This happens only during a bounded window after a takeover (the planner,
// farm/plan, opens and ends it). The kernel engine (filter/kernel) does it
// without user space: its takeover set lets such packets through unmarked.
// The NFQUEUE engine toggles rules.SetReset: outside the window the
// kernel queues only SYNs (and new UDP flows): queuing every packet that
// has no conntrack entry of ours all the time would send all other nodes'
// traffic through user space, which measured 3-4x slower. During the window
// the kernel also queues, on each node that took over buckets, every
// mid-flow TCP packet to a VIP that no flow of that node claims; these are
// mostly the other live nodes' traffic, which the decider drops at about
// 50 ns each (plus the queue round trip), so throughput through that node
// drops while the window is open. Keep the window just long enough for the
// dead node's clients to send something: their retransmissions come within
// seconds, but idle keep-alive connections speak only at their next
// request, so a window about as long as the application's keep-alive
// timeout catches most of them. Only packets that conntrack sees as new
// reach the queue: mid-flow ACKs and data (picked up because
// net.netfilter.nf_conntrack_tcp_loose is 1, the default); a lone FIN or
// RST is invalid to conntrack and still dropped.
//
// A node the farm declared dead may not be dead: if only its agent
// crashed, its kernel keeps serving the flows it already had (their
// conntrack marks are its own). The takeover reset cuts those flows too.
// That is intended: the farm declared the node dead and gave its buckets
// away, so those clients are better off reconnecting to the new owner now
// than being served by a node that no longer takes part in the farm.
package filter
