package member

import (
	"testing"
	"time"

	"github.com/webfarm/farm/farm/view"
)

func TestTagsRoundTrip(t *testing.T) {
	n := nodeFromTags("web1", "10.0.0.1:7946", true, false, Tags(7, 50, view.StateDraining, time.UnixMilli(1764582000123)))
	if n.ID != 7 || n.Weight != 50 || n.State != view.StateDraining || n.SwitchAt != 1764582000123*int64(time.Millisecond) {
		t.Fatalf("round trip: %+v", n)
	}
	if n := nodeFromTags("x", "", true, false, map[string]string{"id": "999"}); n.ID != 0 {
		t.Errorf("out-of-range id accepted: %+v", n)
	}
	if n := nodeFromTags("x", "", false, false, Tags(1, 1, view.StateUp, time.Time{})); n.State != view.StateDown {
		t.Errorf("unreachable node state %s, want down", n.State)
	}
	for _, bad := range []string{"-1", "+5", "0", "1e12", "0x10", "1234567890123456", " 1"} {
		if n := nodeFromTags("x", "", true, false, map[string]string{"sw": bad}); n.SwitchAt != 0 {
			t.Errorf("switch tag %q read as %d", bad, n.SwitchAt)
		}
	}
	if _, ok := Tags(1, 1, view.StateUp, time.Time{})["sw"]; ok {
		t.Errorf("no switch time encoded as a tag")
	}
}
