package member

import (
	"testing"

	"github.com/webfarm/farm/farm/view"
)

func TestTagsRoundTrip(t *testing.T) {
	n := nodeFromTags("web1", "10.0.0.1:7946", true, false, Tags(7, 50, view.StateDraining))
	if n.ID != 7 || n.Weight != 50 || n.State != view.StateDraining {
		t.Fatalf("round trip: %+v", n)
	}
	if n := nodeFromTags("x", "", true, false, map[string]string{"id": "999"}); n.ID != 0 {
		t.Errorf("out-of-range id accepted: %+v", n)
	}
	if n := nodeFromTags("x", "", false, false, Tags(1, 1, view.StateUp)); n.State != view.StateDown {
		t.Errorf("unreachable node state %s, want down", n.State)
	}
}
