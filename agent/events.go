package agent

import (
	"fmt"

	"github.com/webfarm/farm/farm/events"
	"github.com/webfarm/farm/farm/view"
)

// stateEvents turns the difference between two views into farm events: a node
// appearing, changing state, or its share moving. Pure, so it is tested
// without serf.
func stateEvents(prev, cur []view.Node, shares map[uint8]int) []events.Event {
	old := make(map[string]view.Node, len(prev))
	for _, n := range prev {
		old[n.Name] = n
	}
	var out []events.Event
	for _, n := range cur {
		o, seen := old[n.Name]
		switch {
		case !seen:
			out = append(out, events.Event{Node: n.Name, What: "node." + string(n.State),
				Why: fmt.Sprintf("joined the farm (id %d, weight %d)", n.ID, n.Weight)})
		case o.State != n.State:
			out = append(out, events.Event{Node: n.Name, What: "node." + string(n.State),
				Why: fmt.Sprintf("was %s; now owns %d buckets", o.State, shares[n.ID])})
		}
	}
	return out
}
