package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webfarm/farm/farm/view"
)

func TestEffectiveState(t *testing.T) {
	tests := []struct {
		intent Intent
		failed bool
		want   view.State
	}{
		{IntentUp, false, view.StateUp},
		{IntentUp, true, view.StateFailed},
		{IntentStopped, false, view.StateStopped},
		{IntentStopped, true, view.StateStopped},
		{IntentDraining, false, view.StateDraining},
		{IntentDraining, true, view.StateDraining},
	}
	for _, tc := range tests {
		if got := effectiveState(tc.intent, tc.failed); got != tc.want {
			t.Errorf("effectiveState(%s, %v) = %s, want %s", tc.intent, tc.failed, got, tc.want)
		}
	}
}

func TestIntentPersistence(t *testing.T) {
	dir := t.TempDir()
	if got, err := loadIntent(dir); err != nil || got != IntentUp {
		t.Fatalf("fresh dir: got %s, %v; want up", got, err)
	}
	for _, in := range []Intent{IntentStopped, IntentUp} {
		if err := saveIntent(dir, in); err != nil {
			t.Fatal(err)
		}
		if got, err := loadIntent(dir); err != nil || got != in {
			t.Fatalf("got %s, %v; want %s", got, err, in)
		}
	}
	if err := saveIntent(dir, IntentDraining); err != nil {
		t.Fatal(err)
	}
	if got, _ := loadIntent(dir); got != IntentStopped {
		t.Fatalf("interrupted drain: got %s, want stopped", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadIntent(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "state.json")) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt state file: %v, want an error naming the file and how to reset it", err)
	}
	// A save replaces the corrupt file and leaves no temp file behind.
	if err := saveIntent(dir, IntentUp); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("state dir holds %d files after a save, want only state.json", len(ents))
	}
}

func TestIntentForAction(t *testing.T) {
	for action, want := range map[string]Intent{"start": IntentUp, "stop": IntentStopped, "drain": IntentDraining} {
		if got, err := intentForAction(action); err != nil || got != want {
			t.Errorf("%s: got %s, %v", action, got, err)
		}
	}
	if _, err := intentForAction("reboot"); err == nil {
		t.Error("reboot: want error")
	}
}
