package filter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PortSet is a set of TCP/UDP ports as a 65536-bit bitmap: membership is one
// shift and one mask, with no allocation, which the per-packet path needs.
// The zero value is the empty set. A PortSet must not be changed once it is
// shared with a Decider; ParsePorts builds a finished one.
type PortSet struct {
	bits [65536 / 64]uint64
}

// PortRange is an inclusive range of ports, Lo <= Hi; a single port has
// Lo == Hi. Rule generators print ranges rather than 65536 bits.
type PortRange struct {
	Lo, Hi uint16
}

// ParsePorts reads a config port list: comma-separated ports and inclusive
// ranges, such as "80,443,8000-8100". Spaces around items and around the
// dash are allowed. Every port is 1..65535, a range's start is not above its
// end, and items may not overlap: a repeated port is almost always a typo
// (adjacent items, "80,81", are fine). It is the only parser of port lists,
// so `farm check` and the data path read a list the same way.
//
// Errors start with the offending item, quoted ("80-": a range needs a start
// and an end), or with the whole list when the list itself is wrong.
func ParsePorts(s string) (*PortSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%q: no ports (write a list or ranges, e.g. \"80,443,8000-8100\")", s)
	}
	items := strings.Split(s, ",")
	seen := make([]PortRange, 0, len(items)) // in the order written, for messages
	ps := new(PortSet)
	for _, raw := range items {
		item := strings.TrimSpace(raw)
		if item == "" {
			return nil, fmt.Errorf("%q: empty item (remove the extra comma)", s)
		}
		r, err := parseItem(item)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		for _, o := range seen {
			if r.Lo <= o.Hi && o.Lo <= r.Hi {
				return nil, fmt.Errorf("%q: overlaps %s (remove the repeated ports)", item, o)
			}
		}
		seen = append(seen, r)
		ps.addRange(r.Lo, r.Hi)
	}
	return ps, nil
}

// parseItem reads one item of a port list: a port or a range.
func parseItem(item string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	if !isRange {
		p, err := ParsePort(item)
		return PortRange{p, p}, err
	}
	lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	if lo == "" || hi == "" {
		return PortRange{}, errors.New("a range needs a start and an end, e.g. 8000-8100")
	}
	a, err := ParsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	b, err := ParsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if a > b {
		return PortRange{}, fmt.Errorf("range is reversed (write %d-%d)", b, a)
	}
	return PortRange{a, b}, nil
}

// ParsePort reads one port number, 1..65535, in decimal without sign or
// spaces. Port 0 is refused: it is no port a client connects to, and as a
// listen port it means "any", which no config wants. Config checks of
// host:port values use it too, so every port reads the same way.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1..65535", n)
	}
	return uint16(n), nil
}

func (p *PortSet) addRange(lo, hi uint16) {
	for port := uint32(lo); port <= uint32(hi); port++ {
		p.bits[port>>6] |= 1 << (port & 63)
	}
}

// Has reports whether port is in the set. A nil set has no ports, so a rule
// without ports matches nothing rather than everything (fail closed).
func (p *PortSet) Has(port uint16) bool {
	if p == nil {
		return false
	}
	return p.bits[port>>6]&(1<<(port&63)) != 0
}

// Ranges returns the set as sorted, non-overlapping, non-adjacent ranges:
// the shortest form for nft sets and iptables multiport.
func (p *PortSet) Ranges() []PortRange {
	if p == nil {
		return nil
	}
	var out []PortRange
	in := false
	var start uint16
	for port := 0; port <= 65535; port++ {
		has := p.Has(uint16(port))
		switch {
		case has && !in:
			in, start = true, uint16(port)
		case !has && in:
			in = false
			out = append(out, PortRange{Lo: start, Hi: uint16(port - 1)})
		}
	}
	if in {
		out = append(out, PortRange{Lo: start, Hi: 65535})
	}
	return out
}

// Union returns a new set holding the ports of every given set (nil sets
// are empty). Rule generators merge rules of one protocol with it.
func Union(sets ...*PortSet) *PortSet {
	u := new(PortSet)
	for _, s := range sets {
		if s == nil {
			continue
		}
		for i := range u.bits {
			u.bits[i] |= s.bits[i]
		}
	}
	return u
}

// Empty reports whether the set holds no port.
func (p *PortSet) Empty() bool {
	if p == nil {
		return true
	}
	for _, w := range p.bits {
		if w != 0 {
			return false
		}
	}
	return true
}

// String returns the set in the config syntax ("80,443,8000-8100"), so a
// parsed set prints back as its canonical form.
func (p *PortSet) String() string {
	var b strings.Builder
	for i, r := range p.Ranges() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// String returns "80" or "8000-8100".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}
