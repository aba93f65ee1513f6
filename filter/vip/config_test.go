package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"ipv4", Config{netip.MustParseAddr("10.0.0.100"), "eth0", ModeVMAC}, ""},
		{"ipv6 multicast", Config{netip.MustParseAddr("2001:db8::100"), "ens3", ModeMulticast}, ""},
		{"ipv4 igmp", Config{netip.MustParseAddr("10.0.0.100"), "eth0", ModeIGMP}, ""},
		{"missing addr", Config{Interface: "eth0"}, "address is missing"},
		{"mapped", Config{netip.MustParseAddr("::ffff:10.0.0.1"), "eth0", ModeVMAC}, "plain IPv4"},
		{"zone", Config{netip.MustParseAddr("2001:db8::1%eth0"), "eth0", ModeVMAC}, "zone"},
		{"loopback", Config{netip.MustParseAddr("127.0.0.1"), "eth0", ModeVMAC}, "not a usable"},
		{"multicast addr", Config{netip.MustParseAddr("239.1.1.1"), "eth0", ModeVMAC}, "not a usable"},
		{"link-local v6", Config{netip.MustParseAddr("fe80::1"), "eth0", ModeVMAC}, "not a usable"},
		{"unspecified", Config{netip.MustParseAddr("0.0.0.0"), "eth0", ModeVMAC}, "not a usable"},
		{"broadcast", Config{netip.MustParseAddr("255.255.255.255"), "eth0", ModeVMAC}, "not a usable"},
		{"no interface", Config{netip.MustParseAddr("10.0.0.1"), "", ModeVMAC}, "interface is missing"},
		{"long interface", Config{netip.MustParseAddr("10.0.0.1"), "abcdefghijklmnop", ModeVMAC}, "not a valid"},
		{"quote in interface", Config{netip.MustParseAddr("10.0.0.1"), `eth"0`, ModeVMAC}, "not a valid"},
		{"bad mode", Config{netip.MustParseAddr("10.0.0.1"), "eth0", Mode(5)}, "mode 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHolderName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{holderName(0), true},
		{holderName(maxVIPs - 1), true},
		{"farmv", false},
		{"farmvx", false},
		{"farmv1a", false},
		{"eth0", false},
		{"farmv12345678901", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isHolderName(tt.name); got != tt.want {
				t.Fatalf("isHolderName(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
	if n := holderName(maxVIPs - 1); len(n) > 15 {
		t.Fatalf("holder name %q longer than 15", n)
	}
}

func TestParseDevMcast(t *testing.T) {
	in := "1    lo              1     0     01005e000001\n" +
		"2    eth0            1     1     03bf0a4d0064\n" +
		"2    eth0            2     0     333300000001\n" +
		"garbage\n"
	got := parseDevMcast(in)
	if len(got) != 3 {
		t.Fatalf("parsed %d entries, want 3: %+v", len(got), got)
	}
	if got[1].ifname != "eth0" || got[1].mac.String() != "03:bf:0a:4d:00:64" || !got[1].static {
		t.Fatalf("entry 1 = %+v", got[1])
	}
	if got[2].static {
		t.Fatalf("entry 2 should not be static: %+v", got[2])
	}
}

func TestInterfaceNames(t *testing.T) {
	for _, c := range []struct {
		name           string
		linux, windows bool
	}{
		{"eth0", true, true},
		{"enp0s31f6", true, true},
		{"Ethernet 2", false, true},
		{"vEthernet (Default Switch)", false, true},
		{"a-very-long-interface-name", false, true},
		{" Ethernet", false, false},
		{"Ethernet\t2", false, false},
		{"eth0:1", false, true},
	} {
		if got := checkLinuxName(c.name) == nil; got != c.linux {
			t.Errorf("Linux %q: valid = %v, want %v", c.name, got, c.linux)
		}
		if got := checkWindowsName(c.name) == nil; got != c.windows {
			t.Errorf("Windows %q: valid = %v, want %v", c.name, got, c.windows)
		}
	}
}
