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
		{in: "8000 - 8100", ranges: []PortRange{{8000, 8100}}, str: "8000-8100"},
		{in: "80,81,82", ranges: []PortRange{{80, 82}}, str: "80-82"},
		{in: "1-10,11-20,21", ranges: []PortRange{{1, 21}}, str: "1-21"},
		{in: "1-65535", ranges: []PortRange{{1, 65535}}, str: "1-65535"},
		{in: "65535", ranges: []PortRange{{65535, 65535}}, str: "65535"},
		{in: "7-7", ranges: []PortRange{{7, 7}}, str: "7"},
		{in: "", errPart: `"": no ports`},
		{in: "  ", errPart: "no ports"},
		{in: "80,,443", errPart: `"80,,443": empty item`},
		{in: "80,", errPart: `"80,": empty item`},
		{in: ",80", errPart: "empty item"},
		{in: "0", errPart: `"0": port 0 is out of range 1..65535`},
		{in: "65536", errPart: `"65536": port 65536 is out of range 1..65535`},
		{in: "99999999999999999999", errPart: "is not a port number"},
		{in: "http", errPart: `"http": "http" is not a port number`},
		{in: "80 443", errPart: `"80 443" is not a port number`},
		{in: "80,-5", errPart: `"-5": a range needs a start and an end`},
		{in: "-80", errPart: `"-80": a range needs a start and an end`},
		{in: "10-", errPart: `"10-": a range needs a start and an end`},
		{in: "100-90", errPart: `"100-90": range is reversed (write 90-100)`},
		{in: "1-2-3", errPart: `"1-2-3": "2-3" is not a port number`},
		{in: "+80", errPart: `"+80" is not a port number`},
		// A repeated port is a typo, not a wish to balance it twice.
		{in: "80,80", errPart: `"80": overlaps 80`},
		{in: "80-90,85", errPart: `"85": overlaps 80-90`},
		{in: "100-200,50-100", errPart: `"50-100": overlaps 100-200`},
		{in: "1-10,5-20,21", errPart: `"5-20": overlaps 1-10`},
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

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    uint16
		errPart string
	}{
		{"1", 1, ""}, {"65535", 65535, ""}, {"0", 0, "port 0 is out of range"},
		{"65536", 0, "port 65536 is out of range"}, {"", 0, `"" is not a port number`}, {" 80", 0, "is not a port number"},
	} {
		got, err := ParsePort(tt.in)
		if (err != nil) != (tt.errPart != "") || err != nil && !strings.Contains(err.Error(), tt.errPart) || got != tt.want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d, error containing %q", tt.in, got, err, tt.want, tt.errPart)
		}
	}
}

// FuzzParsePorts checks the invariants callers rely on: an accepted list is
// a non-empty set without port 0, and its canonical form reads back as the
// same set.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80", "80,443,8000-8100", "80-", "90-80", "1-65535", " 1 - 2 ,3", "80,80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePorts(s)
		if err != nil {
			return
		}
		if got.Empty() || got.Has(0) {
			t.Fatalf("ParsePorts(%q) = %q: empty or holds port 0", s, got)
		}
		back, err := ParsePorts(got.String())
		if err != nil || *back != *got {
			t.Fatalf("ParsePorts(%q) = %q, which reads back as %q, %v", s, got, back, err)
		}
	})
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
