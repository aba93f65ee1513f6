package filter

import (
	"testing"

	"github.com/webfarm/farm/farm/table"
)

func TestTakeoverSet(t *testing.T) {
	var tk Takeover
	in := []uint16{0, 1, 63, 64, 65, 2047, table.Buckets - 1}
	for _, b := range in {
		tk.Set(b)
	}
	tk.Set(table.Buckets) // out of range: ignored
	tk.Set(65535)
	for b := range table.Buckets + 10 {
		want := false
		for _, x := range in {
			want = want || int(x) == b
		}
		if got := tk.Has(uint16(b)); got != want {
			t.Errorf("Has(%d) = %v, want %v", b, got, want)
		}
	}
	if tk.Len() != len(in) {
		t.Errorf("Len() = %d, want %d", tk.Len(), len(in))
	}
	var none *Takeover
	if none.Has(0) || none.Len() != 0 {
		t.Error("a nil Takeover must be empty")
	}
}

func TestTakeoverOf(t *testing.T) {
	// Buckets 0..7 with owners before and after node 2 died (and node 5
	// joined, a planned change).
	prev := fill(1)
	copy(prev[:8], []uint8{1, 2, 2, 3, 2, 0, 1, 3})
	next := fill(1)
	copy(next[:8], []uint8{1, 1, 3, 3, 1, 1, 5, 1})
	tests := []struct {
		name       string
		prev, next *table.Table
		self       uint8
		dead       []uint8
		want       []uint16
	}{
		{"self took 2's buckets", prev, next, 1, []uint8{2}, []uint16{1, 4}},
		{"another node's share", prev, next, 3, []uint8{2}, []uint16{2}},
		{"from a live node (planned)", prev, next, 1, []uint8{3}, []uint16{7}},
		{"two dead", prev, next, 1, []uint8{2, 3}, []uint16{1, 4, 7}},
		{"unowned before is no takeover", prev, next, 1, []uint8{0}, nil},
		{"nothing taken", prev, next, 5, []uint8{2}, nil},
		{"no dead", prev, next, 1, nil, nil},
		{"no prev", nil, next, 1, []uint8{2}, nil},
		{"no next", prev, nil, 1, []uint8{2}, nil},
		{"self 0", prev, next, 0, []uint8{2}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TakeoverOf(tt.prev, tt.next, tt.self, tt.dead...)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("TakeoverOf() = %d buckets, want nil", got.Len())
				}
				return
			}
			if got == nil {
				t.Fatalf("TakeoverOf() = nil, want %v", tt.want)
			}
			if got.Len() != len(tt.want) {
				t.Errorf("TakeoverOf() has %d buckets, want %v", got.Len(), tt.want)
			}
			for _, b := range tt.want {
				if !got.Has(b) {
					t.Errorf("TakeoverOf() lacks bucket %d", b)
				}
			}
		})
	}
}

// TestDecideConcurrentSetTakeover swaps takeover sets while deciding (run
// with -race): each decision sees one set or the other.
func TestDecideConcurrentSetTakeover(t *testing.T) {
	d := NewDecider(1, []Rule{{Proto: ProtoTCP, Ports: mustPorts(t, "80")}})
	d.SetTable(fill(1))
	all := new(Takeover)
	for b := range table.Buckets {
		all.Set(uint16(b))
	}
	pkt := ip4("192.0.2.1", "10.0.0.100", ProtoTCP, tcpFlags(l4(ProtoTCP, 1, 80), TCPAck))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			if i%2 == 0 {
				d.SetTakeover(all)
			} else {
				d.SetTakeover(nil)
			}
		}
	}()
	for range 2000 {
		if got := d.Decide(pkt); got.Reason != ReasonOrphan && got.Reason != ReasonNoTakeover {
			t.Fatalf("inconsistent decision %+v", got)
		}
	}
	<-done
	if got := d.Decide(pkt); got.Verdict != Drop || got.Reason != ReasonNoTakeover {
		t.Errorf("after SetTakeover(nil): %+v, want drop no-takeover", got)
	}
}
