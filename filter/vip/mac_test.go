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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VirtualMAC(netip.MustParseAddr(tt.addr), tt.mode)
			if got.String() != tt.want {
				t.Fatalf("VirtualMAC(%s, %v) = %v, want %s", tt.addr, tt.mode, got, tt.want)
			}
			unicast := got[0]&1 == 0
			local := got[0]&2 != 0
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
