package filter

import "testing"

func TestParseAffinity(t *testing.T) {
	tests := []struct {
		in      string
		want    Affinity
		wantErr bool
	}{
		{in: "ip", want: AffinityIP},
		{in: "ip-port", want: AffinityIPPort},
		{in: "network", want: AffinityNetwork},
		{in: "IP", wantErr: true},
		{in: "", wantErr: true},
		{in: "none", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAffinity(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAffinity(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want || got.String() != tt.in {
				t.Errorf("ParseAffinity(%q) = %v (%q), want %v", tt.in, got, got.String(), tt.want)
			}
		})
	}
	if s := Affinity(9).String(); s != "affinity(9)" {
		t.Errorf("Affinity(9).String() = %q", s)
	}
}

func TestParseProtoAndMark(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint8
		err  bool
	}{{"tcp", 6, false}, {"udp", 17, false}, {"TCP", 0, true}, {"icmp", 0, true}} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseProto(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseProto(%q) = %d, %v", tt.in, got, err)
			}
			if err == nil && ProtoName(got) != tt.in {
				t.Errorf("ProtoName(%d) = %q", got, ProtoName(got))
			}
		})
	}
	for _, tt := range []struct {
		id   uint8
		want uint32
	}{{1, 0x0fa00001}, {250, 0x0fa000fa}, {0, 0x0fa00000}} {
		if got := Mark(tt.id); got != tt.want || got&MarkMask != MarkBase {
			t.Errorf("Mark(%d) = %#x, want %#x", tt.id, got, tt.want)
		}
	}
}
