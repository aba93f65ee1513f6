package vip

import (
	"encoding/hex"
	"net"
	"strings"
)

// linkMulticast is one line of /proc/net/dev_mcast.
type linkMulticast struct {
	ifname string
	mac    net.HardwareAddr
	static bool // added by SIOCADDMULTI (ip maddr add), not by a protocol
}

// parseDevMcast parses /proc/net/dev_mcast: "ifindex name users global addr".
func parseDevMcast(s string) []linkMulticast {
	var out []linkMulticast
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		mac, err := hex.DecodeString(f[4])
		if err != nil {
			continue
		}
		out = append(out, linkMulticast{ifname: f[1], mac: net.HardwareAddr(mac), static: f[3] != "0"})
	}
	return out
}
