package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webfarm/farm/farm/view"
)

func TestCounted(t *testing.T) {
	nodes := []view.Node{
		{Name: "web2", ID: 2, State: view.StateUp, Alive: true},
		{Name: "web1", ID: 1, State: view.StateUp, Alive: true},
		{Name: "web3", ID: 3, State: view.StateDown},                 // failed: still counts
		{Name: "web4", ID: 4, State: view.StateDown, Left: true},     // left: does not
		{Name: "web5", ID: 5, State: view.StateDown, Excluded: true}, // excluded: does not
	}
	v := view.Compute(slices.Clone(nodes), true)
	v.Joined = true
	if got := counted(v); !slices.Equal(got, []string{"web1", "web2", "web3"}) {
		t.Errorf("counted = %v", got)
	}
	v.Quorum = false
	if got := counted(v); got != nil {
		t.Errorf("a view without quorum is remembered: %v", got)
	}
}

func TestFarmFile(t *testing.T) {
	dir := t.TempDir()
	if got, err := loadFarm(dir); err != nil || got != nil {
		t.Fatalf("no file: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, farmFileName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFarm(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt file: %v, want an error saying how to reset", err)
	}
}

// A running node remembers the farm it sees, and a new agent on the same
// state_dir starts from it.
func TestAgentRemembersTheFarm(t *testing.T) {
	cfg := testConfig(t, "")
	n := startNode(t, cfg)
	n.waitPlan(t, "serving", servingAll)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := loadFarm(cfg.StateDir)
		if err == nil && slices.Equal(got, []string{"web1"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("farm.json holds %v (%v), want [web1]", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	a, err := NewWith(cfg, quietLog(), Deps{Engine: newFakeEngine(), VIP: fakeVIP{}, Flows: (&fakeFlows{}).count})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.remembered, []string{"web1"}) {
		t.Errorf("a restarted agent remembers %v", a.remembered)
	}
}
