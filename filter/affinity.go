package filter

import "fmt"

// Affinity says which part of the client a flow is hashed on, and so which
// flows are guaranteed to land on the same node. Coarser affinities keep more
// of a client's traffic together (sessions, NAT pools); finer ones spread a
// single busy client over the farm.
type Affinity uint8

const (
	// AffinityIP keeps every flow of one client address on one node. It is the
	// zero value so that an unset affinity behaves like the usual default.
	AffinityIP Affinity = iota
	// AffinityIPPort hashes the client address and source port: each
	// connection may land on a different node (stateless services).
	AffinityIPPort
	// AffinityNetwork keeps a whole client network (/24 for IPv4, /64 for IPv6)
	// on one node, for clients behind NAT pools or with privacy addresses.
	AffinityNetwork
)

// ParseAffinity reads the affinity as written in the config ("ip",
// "ip-port" or "network"; exact, lower case). It is the config's parser:
// its error names the accepted words and leaves naming the key to the caller.
func ParseAffinity(s string) (Affinity, error) {
	switch s {
	case "ip":
		return AffinityIP, nil
	case "ip-port":
		return AffinityIPPort, nil
	case "network":
		return AffinityNetwork, nil
	}
	return 0, fmt.Errorf("%q is not ip, ip-port or network", s)
}

// String returns the config word for the affinity, for logs and status.
func (a Affinity) String() string {
	switch a {
	case AffinityIP:
		return "ip"
	case AffinityIPPort:
		return "ip-port"
	case AffinityNetwork:
		return "network"
	}
	return fmt.Sprintf("affinity(%d)", uint8(a))
}
