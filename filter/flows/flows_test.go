package flows

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestLive(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")
	vips := []netip.Addr{v4, v6}
	tests := []struct {
		name string
		e    entry
		want bool
	}{
		{"tcp established to v4 vip", entry{protoTCP, tcpEstablished, v4}, true},
		{"tcp established to v6 vip", entry{protoTCP, tcpEstablished, v6}, true},
		{"tcp established to v4-mapped vip", entry{protoTCP, tcpEstablished, netip.MustParseAddr("::ffff:192.0.2.100")}, true},
		{"tcp syn sent", entry{protoTCP, 1, v4}, false},
		{"tcp syn recv", entry{protoTCP, 2, v4}, false},
		{"tcp fin wait", entry{protoTCP, 4, v4}, false},
		{"tcp time wait", entry{protoTCP, 7, v4}, false},
		{"tcp without protoinfo", entry{protoTCP, 0, v4}, false},
		{"udp to vip", entry{protoUDP, 0, v6}, true},
		{"udp to another address", entry{protoUDP, 0, netip.MustParseAddr("192.0.2.101")}, false},
		{"tcp established to another address", entry{protoTCP, tcpEstablished, netip.MustParseAddr("2001:db8::101")}, false},
		{"icmp to vip", entry{1, 0, v4}, false},
		{"sctp to vip", entry{132, 0, v4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := live(tt.e, vips); got != tt.want {
				t.Errorf("live(%+v) = %v, want %v", tt.e, got, tt.want)
			}
		})
	}
	if live(entry{protoUDP, 0, v4}, nil) {
		t.Error("live with no VIPs = true, want false")
	}
}

func TestCountRejectsMarkOutsideMask(t *testing.T) {
	_, err := Count(context.Background(), 0x0fa00001, 0xffffff00, []netip.Addr{netip.MustParseAddr("192.0.2.100")})
	if err == nil || !strings.Contains(err.Error(), "outside mask") {
		t.Fatalf("Count = %v, want an error about the mask", err)
	}
}
