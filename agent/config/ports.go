package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ParsePorts parses a rule's port list: comma-separated ports and inclusive
// ranges, such as "80,443,8000-8100". Spaces around items and around the dash
// are allowed. Every port is 1..65535, a range's start is not above its end,
// and items may not overlap (a repeated port is almost always a typo).
//
// It returns one [lo, hi] pair per item, in the order written; a single port
// p is [p, p]. It is pure so that validation and the data path read the same
// list the same way. Errors start with the offending item, quoted.
func ParsePorts(s string) ([][2]uint16, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%q: no ports (write a list or ranges, e.g. \"80,443,8000-8100\")", s)
	}
	items := strings.Split(s, ",")
	out := make([][2]uint16, 0, len(items))
	for _, raw := range items {
		item := strings.TrimSpace(raw)
		if item == "" {
			return nil, fmt.Errorf("%q: empty item (remove the extra comma)", s)
		}
		var r [2]uint16
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			p, err := parsePort(item)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			r = [2]uint16{p, p}
		} else {
			lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
			if lo == "" || hi == "" {
				return nil, fmt.Errorf("%q: a range needs a start and an end, e.g. 8000-8100", item)
			}
			a, err := parsePort(lo)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			b, err := parsePort(hi)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			if a > b {
				return nil, fmt.Errorf("%q: range is reversed (write %d-%d)", item, b, a)
			}
			r = [2]uint16{a, b}
		}
		for _, o := range out {
			if r[0] <= o[1] && o[0] <= r[1] {
				return nil, fmt.Errorf("%q: overlaps %s", item, formatRange(o))
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1..65535", n)
	}
	return uint16(n), nil
}

func formatRange(r [2]uint16) string {
	if r[0] == r[1] {
		return strconv.Itoa(int(r[0]))
	}
	return fmt.Sprintf("%d-%d", r[0], r[1])
}
