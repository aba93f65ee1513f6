package kernel

import (
	"slices"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/webfarm/farm/filter"
)

// TestPortElems checks the interval encoding against what nft 1.0.6 sends
// for { 80, 1000-65535 } (nft --debug=netlink): a closing element at 0,
// start and one-past-the-end per range, no end after 65535.
func TestPortElems(t *testing.T) {
	ps, err := filter.ParsePorts("80,1000-65535")
	if err != nil {
		t.Fatal(err)
	}
	type el struct {
		port uint16
		end  bool
	}
	var got []el
	for _, e := range portElems(ps) {
		got = append(got, el{uint16(e.Key[0])<<8 | uint16(e.Key[1]), e.IntervalEnd})
	}
	want := []el{{0, true}, {80, false}, {81, true}, {1000, false}}
	if !slices.Equal(got, want) {
		t.Errorf("portElems = %v, want %v", got, want)
	}
}

// TestBucketExprs pins the key loads and hash lengths of every key kind
// (filter.BucketOf documents the layouts; TestBucketKernelMatchesGo checks
// them against the kernel).
func TestBucketExprs(t *testing.T) {
	tests := []struct {
		f       family
		aff     filter.Affinity
		loads   [][3]uint32 // register, offset, length; the network header first
		hashLen uint32
	}{
		{familyIPv4, filter.AffinityIP, [][3]uint32{{reg, 12, 4}}, 4},
		{familyIPv4, filter.AffinityNetwork, [][3]uint32{{reg, 12, 3}}, 3},
		{familyIPv4, filter.AffinityIPPort, [][3]uint32{{reg, 12, 4}, {regPort4, 0, 2}}, 8},
		{familyIPv6, filter.AffinityIP, [][3]uint32{{reg, 8, 16}}, 16},
		{familyIPv6, filter.AffinityNetwork, [][3]uint32{{reg, 8, 8}}, 8},
		{familyIPv6, filter.AffinityIPPort, [][3]uint32{{reg, 8, 16}, {regPort6, 0, 2}}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.f.name+" "+tt.aff.String(), func(t *testing.T) {
			ex := tt.f.bucketExprs(tt.aff)
			if len(ex) != len(tt.loads)+1 {
				t.Fatalf("%d expressions, want %d", len(ex), len(tt.loads)+1)
			}
			for i, l := range tt.loads {
				p := ex[i].(*expr.Payload)
				base := expr.PayloadBaseNetworkHeader
				if i > 0 {
					base = expr.PayloadBaseTransportHeader
				}
				if p.DestRegister != l[0] || p.Offset != l[1] || p.Len != l[2] || p.Base != base {
					t.Errorf("load %d = %+v, want register %d offset %d len %d", i, p, l[0], l[1], l[2])
				}
			}
			h := ex[len(ex)-1].(*expr.Hash)
			want := expr.Hash{SourceRegister: reg, DestRegister: reg, Length: tt.hashLen, Modulus: 4096, Seed: filter.BucketSeed, Type: expr.HashTypeJenkins}
			if *h != want {
				t.Errorf("hash = %+v, want %+v", *h, want)
			}
		})
	}
}
