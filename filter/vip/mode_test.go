package vip

import "testing"

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"vmac", ModeVMAC, false},
		{"multicast", ModeMulticast, false},
		{"Multicast", ModeMulticast, false},
		{"igmp", ModeIGMP, false},
		{" IGMP", ModeIGMP, false},
		{" vmac ", ModeVMAC, false},
		{"", 0, true},
		{"unicast", 0, true},
		{"mcast", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMode(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestModeText(t *testing.T) {
	for _, m := range []Mode{ModeVMAC, ModeMulticast, ModeIGMP} {
		t.Run(m.String(), func(t *testing.T) {
			b, err := m.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back Mode = 99
			if err := back.UnmarshalText(b); err != nil || back != m {
				t.Fatalf("round trip of %v = %v, %v", m, back, err)
			}
		})
	}
	if _, err := Mode(7).MarshalText(); err == nil {
		t.Fatal("MarshalText of an unknown mode succeeded")
	}
	if Mode(7).String() != "Mode(7)" {
		t.Fatalf("String of an unknown mode = %q", Mode(7).String())
	}
}
