package filter

import (
	"testing"

	"github.com/webfarm/farm/farm/table"
)

// TestDecideConcurrentSetTakeover swaps takeover sets while deciding (run
// with -race): each decision sees one set or the other.
func TestDecideConcurrentSetTakeover(t *testing.T) {
	d := NewDecider(1, []Rule{{Proto: ProtoTCP, Ports: mustPorts(t, "80")}})
	d.SetTable(fill(1))
	all := new(table.Set)
	for b := range table.Buckets {
		all.Add(uint16(b))
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
