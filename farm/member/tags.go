package member

import (
	"strconv"

	"github.com/webfarm/farm/farm/table"
	"github.com/webfarm/farm/farm/view"
)

// Serf tag keys. Short, because tags travel in every gossip message.
const (
	tagID     = "id"
	tagWeight = "w"
	tagState  = "st"
	// tagKernel = "1": the node's data path runs in its kernel.
	tagKernel = "k"
)

// tags are this node's tags with the given weight and state.
func (m *Membership) tags(weight uint32, st view.State) map[string]string {
	t := Tags(m.cfg.ID, weight, st)
	if m.cfg.KernelDataPath {
		t[tagKernel] = "1"
	}
	return t
}

// Tags encodes a node's identity and state for serf.
func Tags(id uint8, weight uint32, st view.State) map[string]string {
	return map[string]string{
		tagID:     strconv.Itoa(int(id)),
		tagWeight: strconv.FormatUint(uint64(weight), 10),
		tagState:  string(st),
	}
}

// nodeFromTags decodes what Tags encoded; a member with tags we cannot read
// (another program on the gossip port, a future version) gets id 0 and owns
// nothing.
func nodeFromTags(name, addr string, alive, left bool, tags map[string]string) view.Node {
	n := view.Node{Name: name, Addr: addr, Alive: alive, Left: left, State: view.State(tags[tagState]), Kernel: tags[tagKernel] == "1"}
	if id, err := strconv.Atoi(tags[tagID]); err == nil && id > 0 && id <= table.MaxID {
		n.ID = uint8(id)
	}
	if w, err := strconv.ParseUint(tags[tagWeight], 10, 32); err == nil {
		n.Weight = uint32(w)
	}
	if !alive {
		n.State = view.StateDown
	}
	return n
}
