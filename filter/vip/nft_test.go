package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNftVIPChains(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("fd77::100")
	tests := []struct {
		name    string
		mode    Mode
		vip     netip.Addr
		want    []string
		notWant []string
	}{
		{"vmac", ModeVMAC, v4, []string{
			`add chain netdev farm_vip vip2_out { type filter hook egress device "farmv2" priority 0; policy drop; }`,
			`add chain netdev farm_vip vip2_hold { type filter hook ingress device "farmv2" priority 0; policy drop; }`,
			`add rule netdev farm_vip vip2_hold meta pkttype host accept`,
		}, []string{"mcast", "eth0"}},
		{"multicast", ModeMulticast, v4, []string{
			`hook egress device "farmv2" priority 0; policy drop;`,
			`add chain netdev farm_vip vip2_mcast { type filter hook ingress device "eth0" priority 0; policy accept; }`,
			`add rule netdev farm_vip vip2_mcast ether daddr 03:bf:0a:00:00:64 counter meta pkttype set host`,
		}, []string{"pkttype host accept"}},
		// igmp: only the VIP's frames become the host's; the group's own
		// traffic (reports, real multicast) keeps its pkttype.
		{"igmp ipv4", ModeIGMP, v4, []string{
			`hook egress device "farmv2" priority 0; policy drop;`,
			`add chain netdev farm_vip vip2_mcast { type filter hook ingress device "eth0" priority 0; policy accept; }`,
			`add rule netdev farm_vip vip2_mcast ether daddr 01:00:5e:7f:00:64 ip daddr 10.0.0.100 counter meta pkttype set host`,
		}, []string{"pkttype host accept", "ip6"}},
		{"igmp ipv6", ModeIGMP, v6, []string{
			`add rule netdev farm_vip vip2_mcast ether daddr 33:33:00:00:01:00 ip6 daddr fd77::100 counter meta pkttype set host`,
		}, []string{"pkttype host accept", " ip daddr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nftVIPChains(2, "farmv2", "eth0", tt.mode, VirtualMAC(tt.vip, tt.mode), tt.vip)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("script lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("script has %q:\n%s", w, got)
				}
			}
		})
	}
	if got := nftDeleteTable(); got != "add table netdev farm_vip\ndelete table netdev farm_vip\n" {
		t.Errorf("nftDeleteTable() = %q", got)
	}
	if got := nftCreateTable(); got != "create table netdev farm_vip\n" {
		t.Errorf("nftCreateTable() = %q", got)
	}
}
