// Package filter is the data path's pure core: it parses the first packet of a
// flow, derives the client key by the rule's affinity, hashes it to a bucket
// and decides whether this node keeps the flow. The OS engines (NFQUEUE on
// Linux) and rule generation live beside it and call into it.
package filter
