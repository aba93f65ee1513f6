package vip

import (
	"net"
	"strings"
	"testing"
)

func TestNftVIPChains(t *testing.T) {
	mc, _ := net.ParseMAC("03:bf:0a:00:00:64")
	tests := []struct {
		name    string
		mode    Mode
		want    []string
		notWant []string
	}{
		{"vmac", ModeVMAC, []string{
			`add chain netdev farm_vip vip2_out { type filter hook egress device "farmv2" priority 0; policy drop; }`,
			`add chain netdev farm_vip vip2_hold { type filter hook ingress device "farmv2" priority 0; policy drop; }`,
			`add rule netdev farm_vip vip2_hold meta pkttype host accept`,
		}, []string{"mcast", "eth0"}},
		{"multicast", ModeMulticast, []string{
			`hook egress device "farmv2" priority 0; policy drop;`,
			`add chain netdev farm_vip vip2_mcast { type filter hook ingress device "eth0" priority 0; policy accept; }`,
			`add rule netdev farm_vip vip2_mcast ether daddr 03:bf:0a:00:00:64 counter meta pkttype set host`,
		}, []string{"pkttype host accept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nftVIPChains(2, "farmv2", "eth0", tt.mode, mc)
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
