package agent

import "testing"

// A node that counted no flow and whose engine saw no new flow since need
// not dump conntrack again; any new flow, an unknown count or an engine
// that cannot tell makes it count.
func TestStillNoFlows(t *testing.T) {
	var d details
	d.flows.Store(0)
	d.flowsSeen = []uint64{5, 0}
	if !d.stillNoFlows([]uint64{5, 0}) {
		t.Error("no new flow since an empty count: want no recount")
	}
	if d.stillNoFlows([]uint64{6, 0}) {
		t.Error("a new flow to the first VIP: want a recount")
	}
	if d.stillNoFlows(nil) {
		t.Error("the engine cannot tell (nil): want a recount")
	}
	d.flows.Store(3)
	if d.stillNoFlows([]uint64{5, 0}) {
		t.Error("the last count found flows (they may have ended): want a recount")
	}
	d.flows.Store(-1)
	if d.stillNoFlows([]uint64{5, 0}) {
		t.Error("the last count failed: want a recount")
	}
}
