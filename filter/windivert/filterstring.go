package windivert

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/webfarm/farm/filter"
)

// Limits of the WinDivert 2.2 filter compiler (dll/windivert_helper.c): a
// filter compiles to at most FilterMaxTests tests (WINDIVERT_FILTER_MAXLEN)
// and the tokenizer takes at most filterMaxTokens tokens (5 times that,
// one kept for the end). A longer filter fails WinDivertOpen with
// ERROR_INVALID_PARAMETER; Filter refuses it first, with a message.
const (
	FilterMaxTests  = 256
	filterMaxTokens = 5*FilterMaxTests - 1
)

// Filter returns the WinDivert filter string that diverts what the engine
// decides: inbound IPv4/IPv6 packets to a VIP on a balanced port. Every
// packet of such a flow is diverted, not only the first (Windows has no
// conntrack mark to decide the rest in the kernel), and the engine keeps
// its own flow table. Outbound packets (replies) are never diverted, nor
// loopback ones (WinDivert sees loopback only as outbound), so a node
// always reaches its own VIP. Fragments are not matched: without
// WINDIVERT_FLAG_FRAGMENTS the handle sees the reassembled packet.
//
// A field test fails for a packet without that header, so "tcp.DstPort ==
// 80" never matches UDP and the alternatives of both protocols sit in one
// "or" list. The result is stable for a given spec: VIPs and ports are
// sorted, and each protocol's ports are the union over its rules.
//
// For VIPs 10.0.0.100 and 2001:db8::100, tcp 80,443 and udp 53:
//
//	inbound and (ip.DstAddr == 10.0.0.100 or ipv6.DstAddr == 2001:db8::100) and (tcp.DstPort == 80 or tcp.DstPort == 443 or udp.DstPort == 53)
func Filter(s Spec) (string, error) {
	var b strings.Builder
	var tests, tokens int
	b.WriteString("inbound")
	tests, tokens = 1, 1

	var addrs []string
	for _, a := range vipAddrs(s) {
		field := "ip.DstAddr"
		if a.Is6() {
			field = "ipv6.DstAddr"
		}
		addrs = append(addrs, field+" == "+a.String())
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("windivert filter: no VIP")
	}
	tests += len(addrs)
	tokens += 3*len(addrs) + (len(addrs) - 1) // tests and the "or"s
	writeAlternatives(&b, addrs, &tokens)

	var ports []string
	for _, proto := range []uint8{filter.ProtoTCP, filter.ProtoUDP} {
		field := filter.ProtoName(proto) + ".DstPort"
		for _, r := range protoPorts(s, proto).Ranges() {
			if r.Lo == r.Hi {
				ports = append(ports, field+" == "+strconv.Itoa(int(r.Lo)))
				tests++
				tokens += 3
				continue
			}
			ports = append(ports, "("+field+" >= "+strconv.Itoa(int(r.Lo))+" and "+field+" <= "+strconv.Itoa(int(r.Hi))+")")
			tests += 2
			tokens += 3 + 1 + 3 + 2 // two tests, "and", parentheses
		}
	}
	if len(ports) == 0 {
		return "", fmt.Errorf("windivert filter: no balanced port")
	}
	tokens += len(ports) - 1
	writeAlternatives(&b, ports, &tokens)

	if tests > FilterMaxTests || tokens > filterMaxTokens {
		return "", fmt.Errorf("windivert filter: %d VIPs and %d port items make %d tests and %d tokens, over WinDivert's limit of %d tests and %d tokens (use fewer, wider port ranges)",
			len(addrs), len(ports), tests, tokens, FilterMaxTests, filterMaxTokens)
	}
	return b.String(), nil
}

// writeAlternatives appends " and X" or " and (X or Y ...)" to b and counts
// the parentheses it writes.
func writeAlternatives(b *strings.Builder, alts []string, tokens *int) {
	b.WriteString(" and ")
	*tokens++
	if len(alts) == 1 {
		b.WriteString(alts[0])
		return
	}
	b.WriteByte('(')
	b.WriteString(strings.Join(alts, " or "))
	b.WriteByte(')')
	*tokens += 2
}

// vipAddrs returns the spec's VIP addresses, unmapped, IPv4 before IPv6,
// sorted and without duplicates.
func vipAddrs(s Spec) []netip.Addr {
	var out []netip.Addr
	for _, v := range s.VIPs {
		a := v.Addr.Unmap().WithZone("")
		if a.IsValid() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare) // Compare puts IPv4 first
	return slices.Compact(out)
}

// protoPorts returns the union of the balanced ports of proto over all
// rules (the affinity matters only to the decision, not to what is
// diverted).
func protoPorts(s Spec, proto uint8) *filter.PortSet {
	var sets []*filter.PortSet
	for _, r := range s.Rules {
		if r.Proto == proto {
			sets = append(sets, r.Ports)
		}
	}
	return filter.Union(sets...)
}
