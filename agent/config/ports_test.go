package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    [][2]uint16
		wantErr string
	}{
		{in: "80", want: [][2]uint16{{80, 80}}},
		{in: "80,443,8000-8100", want: [][2]uint16{{80, 80}, {443, 443}, {8000, 8100}}},
		{in: " 80 , 443 ", want: [][2]uint16{{80, 80}, {443, 443}}},
		{in: "8000 - 8100", want: [][2]uint16{{8000, 8100}}},
		{in: "1-65535", want: [][2]uint16{{1, 65535}}},
		{in: "443,80", want: [][2]uint16{{443, 443}, {80, 80}}},
		{in: "8080-8080", want: [][2]uint16{{8080, 8080}}},
		{in: "", wantErr: `"": no ports`},
		{in: "  ", wantErr: "no ports"},
		{in: "80,", wantErr: `"80,": empty item`},
		{in: ",80", wantErr: "empty item"},
		{in: "80,,443", wantErr: "empty item"},
		{in: "80-", wantErr: `"80-": a range needs a start and an end`},
		{in: "-80", wantErr: `"-80": a range needs a start and an end`},
		{in: "0", wantErr: `"0": port 0 is out of range 1..65535`},
		{in: "65536", wantErr: `"65536": port 65536 is out of range 1..65535`},
		{in: "99999999999999999999", wantErr: "is not a port number"},
		{in: "http", wantErr: `"http": "http" is not a port number`},
		{in: "+80", wantErr: "is not a port number"},
		{in: "80 443", wantErr: `"80 443" is not a port number`},
		{in: "1-2-3", wantErr: `"1-2-3": "2-3" is not a port number`},
		{in: "90-80", wantErr: `"90-80": range is reversed (write 80-90)`},
		{in: "80-90,85", wantErr: `"85": overlaps 80-90`},
		{in: "80,80", wantErr: `"80": overlaps 80`},
		{in: "100-200,50-100", wantErr: `"50-100": overlaps 100-200`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePorts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePorts(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParsePorts(%q) (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

// FuzzParsePorts checks the invariants callers rely on: accepted ranges are
// ordered, within 1..65535, disjoint, and read back the same when printed.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80", "80,443,8000-8100", "80-", "90-80", "1-65535", " 1 - 2 ,3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePorts(s)
		if err != nil {
			return
		}
		var parts []string
		for i, r := range got {
			if r[0] < 1 || r[0] > r[1] {
				t.Fatalf("ParsePorts(%q) gave bad range %v", s, r)
			}
			for _, o := range got[:i] {
				if r[0] <= o[1] && o[0] <= r[1] {
					t.Fatalf("ParsePorts(%q) gave overlapping %v and %v", s, o, r)
				}
			}
			parts = append(parts, formatRange(r))
		}
		back, err := ParsePorts(strings.Join(parts, ","))
		if err != nil || !cmp.Equal(back, got) {
			t.Fatalf("ParsePorts(%q) = %v, printed back as %q gives %v, %v", s, got, strings.Join(parts, ","), back, err)
		}
	})
}
