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

// ParsePorts reads a config port list such as "80,443,8000-8100". Spaces
// around items are allowed; port 0, empty items and reversed ranges are
// errors that name the offending item.
func ParsePorts(s string) (*PortSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("ports: empty list (give ports such as \"80,443\" or a range \"8000-8100\")")
	}
	ps := new(PortSet)
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("ports %q: item %d is empty (remove the extra comma)", s, i+1)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("ports %q: item %q: %w", s, item, err)
		}
		last := first
		if isRange {
			last, err = parsePort(hi)
			if err != nil {
				return nil, fmt.Errorf("ports %q: item %q: %w", s, item, err)
			}
			if last < first {
				return nil, fmt.Errorf("ports %q: item %q: range ends before it starts (write %d-%d)", s, item, last, first)
			}
		}
		ps.addRange(first, last)
	}
	return ps, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
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
