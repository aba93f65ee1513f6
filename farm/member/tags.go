package member

import (
	"math"
	"strconv"
	"time"

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
	// tagSwitch is the switch time the node announced with its latest
	// change of state or weight, in unix milliseconds (13 digits until
	// 2286; nanoseconds would cost 6 more bytes in every message and buy
	// nothing at a margin of milliseconds).
	tagSwitch = "sw"
)

// maxSwitchTagLen bounds the switch tag a peer sends: a unix time in ms has
// 13 digits for centuries; anything longer is not one of ours.
const maxSwitchTagLen = 15

// maxSwitchMS is the largest switch time in ms whose nanoseconds fit an
// int64.
const maxSwitchMS = math.MaxInt64 / int64(time.Millisecond)

// tags are this node's tags with the given weight, state and switch time.
func (m *Membership) tags(weight uint32, st view.State, switchAt time.Time) map[string]string {
	t := Tags(m.cfg.ID, weight, st, switchAt)
	if m.cfg.KernelDataPath {
		t[tagKernel] = "1"
	}
	return t
}

// Tags encodes a node's identity and state for serf, with the switch time
// it announces for the change (zero: none).
func Tags(id uint8, weight uint32, st view.State, switchAt time.Time) map[string]string {
	t := map[string]string{
		tagID:     strconv.Itoa(int(id)),
		tagWeight: strconv.FormatUint(uint64(weight), 10),
		tagState:  string(st),
	}
	if ms := switchAt.UnixMilli(); !switchAt.IsZero() && ms > 0 && ms <= maxSwitchMS {
		t[tagSwitch] = strconv.FormatInt(ms, 10)
	}
	return t
}

// nodeFromTags decodes what Tags encoded; a member with tags we cannot read
// (another program on the gossip port, a future version) gets id 0 and owns
// nothing. An unreadable, negative or absurdly long switch tag reads as no
// announcement (0): the planner then falls back to the handoff delay, which
// is always safe; how far ahead a readable one may lie is the planner's
// check (it needs the time of day).
func nodeFromTags(name, addr string, alive, left bool, tags map[string]string) view.Node {
	n := view.Node{Name: name, Addr: addr, Alive: alive, Left: left, State: view.State(tags[tagState]), Kernel: tags[tagKernel] == "1"}
	if id, err := strconv.Atoi(tags[tagID]); err == nil && id > 0 && id <= table.MaxID {
		n.ID = uint8(id)
	}
	if w, err := strconv.ParseUint(tags[tagWeight], 10, 32); err == nil {
		n.Weight = uint32(w)
	}
	if s := tags[tagSwitch]; s != "" && len(s) <= maxSwitchTagLen {
		// ParseUint refuses signs; the bound keeps ms * 1e6 in an int64
		// (until the year 2262).
		if ms, err := strconv.ParseUint(s, 10, 63); err == nil && ms > 0 && ms <= uint64(maxSwitchMS) {
			n.SwitchAt = int64(ms) * int64(time.Millisecond)
		}
	}
	if !alive {
		n.State = view.StateDown
	}
	return n
}
