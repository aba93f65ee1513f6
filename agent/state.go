package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/webfarm/farm/farm/member"
)

// Intent is what an operator last asked of this node. It is kept on disk so
// that an operator's stop survives an agent restart or a reboot.
type Intent string

// Operator intents.
const (
	IntentUp       Intent = "up"
	IntentStopped  Intent = "stopped"
	IntentDraining Intent = "draining"
)

// effectiveState combines the operator's intent with the application's
// health into the state the node advertises. An operator's stop or drain wins
// over a failed application: the operator asked the node to be out anyway.
func effectiveState(intent Intent, appFailed bool) member.State {
	switch intent {
	case IntentStopped:
		return member.StateStopped
	case IntentDraining:
		return member.StateDraining
	}
	if appFailed {
		return member.StateFailed
	}
	return member.StateUp
}

// intentForAction maps an API action onto the intent it sets.
func intentForAction(action string) (Intent, error) {
	switch action {
	case "start":
		return IntentUp, nil
	case "stop":
		return IntentStopped, nil
	case "drain":
		return IntentDraining, nil
	}
	return "", fmt.Errorf("unknown action %q (stop, start, drain)", action)
}

type stateFile struct {
	Intent Intent `json:"intent"`
}

// loadIntent reads the persisted intent; a missing file means up.
func loadIntent(dir string) (Intent, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return IntentUp, nil
	}
	if err != nil {
		return "", fmt.Errorf("read node state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return "", fmt.Errorf("node state %s: %w (delete it to start the node up)", filepath.Join(dir, "state.json"), err)
	}
	switch sf.Intent {
	case IntentUp, IntentStopped:
		return sf.Intent, nil
	case IntentDraining:
		// A drain interrupted by a restart has lost its flows' owner anyway:
		// finish it as a stop.
		return IntentStopped, nil
	}
	return "", fmt.Errorf("node state %s: unknown intent %q", filepath.Join(dir, "state.json"), sf.Intent)
}

// saveIntent writes the intent atomically (temp file + rename).
func saveIntent(dir string, in Intent) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state_dir %s: %w", dir, err)
	}
	b, _ := json.Marshal(stateFile{Intent: in})
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write node state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("write node state: %w", err)
	}
	return nil
}
