package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/webfarm/farm/farm/member"
)

func TestEffectiveState(t *testing.T) {
	tests := []struct {
		intent Intent
		failed bool
		want   member.State
	}{
		{IntentUp, false, member.StateUp},
		{IntentUp, true, member.StateFailed},
		{IntentStopped, false, member.StateStopped},
		{IntentStopped, true, member.StateStopped},
		{IntentDraining, false, member.StateDraining},
		{IntentDraining, true, member.StateDraining},
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
	if _, err := loadIntent(dir); err == nil {
		t.Fatal("corrupt state file: want error")
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
