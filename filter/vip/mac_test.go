package vip

import (
	"net"
	"net/netip"
	"testing"
)

func TestVirtualMAC(t *testing.T) {
	tests := []struct {
		name string
		addr string
		mode Mode
		want string
	}{
		{"ipv4 vmac", "10.0.0.100", ModeVMAC, "02:bf:0a:00:00:64"},
		{"ipv4 multicast", "10.0.0.100", ModeMulticast, "03:bf:0a:00:00:64"},
		{"ipv4 vmac high octets", "192.168.255.1", ModeVMAC, "02:bf:c0:a8:ff:01"},
		{"ipv4-mapped is ipv4", "::ffff:10.0.0.100", ModeVMAC, "02:bf:0a:00:00:64"},
		// sha256 of fd77::100's 16 bytes starts afffce73 (Python hashlib).
		{"ipv6 vmac", "fd77::100", ModeVMAC, "02:be:af:ff:ce:73"},
		{"ipv6 multicast", "fd77::100", ModeMulticast, "03:be:af:ff:ce:73"},
		{"ipv6 zone ignored", "fd77::100%eth0", ModeVMAC, "02:be:af:ff:ce:73"},
		// igmp: the group's MAC (see TestGroup).
		{"ipv4 igmp", "10.0.0.100", ModeIGMP, "01:00:5e:7f:00:64"},
		{"ipv6 igmp", "fd77::100", ModeIGMP, "33:33:00:00:01:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VirtualMAC(netip.MustParseAddr(tt.addr), tt.mode)
			if got.String() != tt.want {
				t.Fatalf("VirtualMAC(%s, %v) = %v, want %s", tt.addr, tt.mode, got, tt.want)
			}
			unicast := got[0]&1 == 0
			local := got[0]&2 != 0
			if tt.mode == ModeIGMP {
				// A group MAC is globally administered (IANA's 01:00:5e,
				// IPv6's 33:33) and never ours to clean up.
				if unicast || isOurMulticastMAC(got) {
					t.Errorf("%v: want a group MAC that cleanup does not claim", got)
				}
				return
			}
			if !local {
				t.Errorf("%v is not locally administered", got)
			}
			if unicast != (tt.mode == ModeVMAC) {
				t.Errorf("%v: group bit does not match mode %v", got, tt.mode)
			}
			if tt.mode == ModeMulticast && !isOurMulticastMAC(got) {
				t.Errorf("%v not recognised as ours", got)
			}
		})
	}
}

func TestVirtualMACDistinct(t *testing.T) {
	// Different VIPs and families never share a MAC; multicast never uses
	// the IP-multicast prefixes.
	seen := map[string]string{}
	addrs := []string{"10.0.0.100", "10.0.0.101", "fd77::100", "fd77::101", "2001:db8::1", "0.191.10.0"}
	for _, a := range addrs {
		for _, m := range []Mode{ModeVMAC, ModeMulticast} {
			mac := VirtualMAC(netip.MustParseAddr(a), m).String()
			if prev, ok := seen[mac]; ok {
				t.Errorf("%s %v and %s share %s", a, m, prev, mac)
			}
			seen[mac] = a + " " + m.String()
			if mac[:8] == "01:00:5e" || mac[:5] == "33:33" {
				t.Errorf("%s uses an IP multicast prefix", mac)
			}
		}
	}
}

// TestGroup pins the groups and MACs to fixed vectors: they must match
// what Windows nodes (filter/windivert, Windows NLB's IGMP mode) join and
// what routers are configured with, so a change here breaks mixed farms.
func TestGroup(t *testing.T) {
	tests := []struct {
		addr, group, mac string
	}{
		// NLB IGMP mode: 239.255.Y.Z for W.X.Y.Z; RFC 1112 MAC.
		{"10.0.0.100", "239.255.0.100", "01:00:5e:7f:00:64"},
		{"10.213.0.100", "239.255.0.100", "01:00:5e:7f:00:64"},
		{"192.168.255.200", "239.255.255.200", "01:00:5e:7f:ff:c8"},
		{"10.0.128.1", "239.255.128.1", "01:00:5e:7f:80:01"},
		{"::ffff:10.1.2.3", "239.255.2.3", "01:00:5e:7f:02:03"},
		// ff12::6661:726d + the VIP's last 32 bits; RFC 2464 MAC.
		{"2001:db8::a:b0c:d", "ff12::6661:726d:b0c:d", "33:33:0b:0c:00:0d"},
		{"fd00:213::100", "ff12::6661:726d:0:100", "33:33:00:00:01:00"},
		{"fd77::100%eth0", "ff12::6661:726d:0:100", "33:33:00:00:01:00"},
		{"2001:db8::ffff:ffff", "ff12::6661:726d:ffff:ffff", "33:33:ff:ff:ff:ff"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			g := GroupOf(a)
			if g.String() != tt.group {
				t.Errorf("GroupOf(%s) = %v, want %s", tt.addr, g, tt.group)
			}
			if !g.IsMulticast() || (g.Is4() && g.IsLinkLocalMulticast()) { // 224.0.0.x is never reported
				t.Errorf("GroupOf(%s) = %v: not a reportable multicast group", tt.addr, g)
			}
			if m := GroupMAC(a).String(); m != tt.mac {
				t.Errorf("GroupMAC(%s) = %s, want %s", tt.addr, m, tt.mac)
			}
			if m := VirtualMAC(a, ModeIGMP).String(); m != tt.mac {
				t.Errorf("VirtualMAC(%s, igmp) = %s, want %s", tt.addr, m, tt.mac)
			}
		})
	}
	if g := GroupOf(netip.Addr{}); g.IsValid() {
		t.Errorf("GroupOf(invalid) = %v", g)
	}
	if m := GroupMAC(netip.Addr{}); m != nil {
		t.Errorf("GroupMAC(invalid) = %v", m)
	}
}

func TestVirtualMACInvalid(t *testing.T) {
	if m := VirtualMAC(netip.Addr{}, ModeVMAC); m != nil {
		t.Errorf("invalid addr gave %v", m)
	}
	if m := VirtualMAC(netip.MustParseAddr("10.0.0.1"), Mode(9)); m != nil {
		t.Errorf("invalid mode gave %v", m)
	}
}

func TestIsOurMulticastMAC(t *testing.T) {
	tests := []struct {
		mac  string
		want bool
	}{
		{"03:bf:0a:00:00:64", true},
		{"03:be:01:02:03:04", true},
		{"02:bf:0a:00:00:64", false},
		{"33:33:00:00:00:01", false},
		{"01:00:5e:00:00:01", false},
	}
	for _, tt := range tests {
		t.Run(tt.mac, func(t *testing.T) {
			mac, _ := net.ParseMAC(tt.mac)
			if got := isOurMulticastMAC(mac); got != tt.want {
				t.Fatalf("isOurMulticastMAC(%s) = %v", tt.mac, got)
			}
		})
	}
}
