package filter

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		ranges  []PortRange
		str     string
		errPart string // substring the error must contain; "" = no error
	}{
		{in: "80", ranges: []PortRange{{80, 80}}, str: "80"},
		{in: "80,443,8000-8100", ranges: []PortRange{{80, 80}, {443, 443}, {8000, 8100}}, str: "80,443,8000-8100"},
		{in: " 443 , 80 ", ranges: []PortRange{{80, 80}, {443, 443}}, str: "80,443"},
		{in: "80,81,82", ranges: []PortRange{{80, 82}}, str: "80-82"},
		{in: "1-10,5-20,21", ranges: []PortRange{{1, 21}}, str: "1-21"},
		{in: "1-65535", ranges: []PortRange{{1, 65535}}, str: "1-65535"},
		{in: "65535", ranges: []PortRange{{65535, 65535}}, str: "65535"},
		{in: "7-7", ranges: []PortRange{{7, 7}}, str: "7"},
		{in: "", errPart: "empty list"},
		{in: "  ", errPart: "empty list"},
		{in: "80,,443", errPart: "item 2 is empty"},
		{in: "80,", errPart: "item 2 is empty"},
		{in: "0", errPart: `"0" is not a port`},
		{in: "65536", errPart: `"65536" is not a port`},
		{in: "http", errPart: `"http" is not a port`},
		{in: "80,-5", errPart: `item "-5": "" is not a port`},
		{in: "100-90", errPart: "range ends before it starts (write 90-100)"},
		{in: "10-", errPart: `item "10-"`},
		{in: "1-2-3", errPart: `"2-3" is not a port`},
		{in: "+80", errPart: `"+80" is not a port`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ps, err := ParsePorts(tt.in)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("ParsePorts(%q) error = %v, want one containing %q", tt.in, err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.ranges, ps.Ranges()); diff != "" {
				t.Errorf("Ranges() -want +got:\n%s", diff)
			}
			if got := ps.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			for _, r := range tt.ranges {
				if !ps.Has(r.Lo) || !ps.Has(r.Hi) {
					t.Errorf("Has(%d..%d) = false", r.Lo, r.Hi)
				}
				if r.Lo > 1 && ps.Has(r.Lo-1) && tt.ranges[0] == r {
					t.Errorf("Has(%d) = true below the first range", r.Lo-1)
				}
			}
			if ps.Has(0) {
				t.Error("Has(0) = true")
			}
		})
	}
}

func TestPortSetNilAndUnion(t *testing.T) {
	var nilSet *PortSet
	if nilSet.Has(80) || !nilSet.Empty() || nilSet.Ranges() != nil || nilSet.String() != "" {
		t.Error("nil PortSet is not an empty set")
	}
	a, _ := ParsePorts("80,443")
	b, _ := ParsePorts("81,1000-2000")
	u := Union(a, nil, b)
	if got, want := u.String(), "80-81,443,1000-2000"; got != want {
		t.Errorf("Union = %q, want %q", got, want)
	}
	if a.String() != "80,443" {
		t.Errorf("Union changed its input: %q", a)
	}
	if !Union().Empty() || u.Empty() {
		t.Error("Empty() wrong")
	}
}

func TestPortSetHasAllocs(t *testing.T) {
	ps, _ := ParsePorts("80,443,8000-8100")
	if n := testing.AllocsPerRun(100, func() { _ = ps.Has(8050) }); n != 0 {
		t.Errorf("Has allocates %v times", n)
	}
}
