package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/webfarm/farm/farm/view"
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
func effectiveState(intent Intent, appFailed bool) view.State {
	switch intent {
	case IntentStopped:
		return view.StateStopped
	case IntentDraining:
		return view.StateDraining
	}
	if appFailed {
		return view.StateFailed
	}
	return view.StateUp
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

// localState is this node's own part of the farm state.
type localState struct {
	// Intent is the operator's last wish, persisted in state_dir.
	Intent Intent
	// AppFailed is set while the checkers keep the node out.
	AppFailed bool
	// Weight is the config's weight, or a reload's.
	Weight uint32
}

// State is the state the node advertises.
func (s localState) State() view.State { return effectiveState(s.Intent, s.AppFailed) }

// local holds the localState. Every change goes through update, which, under
// one lock, persists a new intent and publishes the resulting state and
// weight: a checker failure racing an operator action can never leave an
// older state advertised, and the file never holds an older intent than the
// farm was told.
type local struct {
	mu  sync.Mutex
	cur localState
	// dir is the state_dir the intent is written to.
	dir string
	// publish advertises a state and weight to the farm (serf tags); it
	// must not call back into local.
	publish func(view.State, uint32) error
}

// get returns the current state.
func (l *local) get() localState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// update applies change to the state and, if the advertised state or weight
// changed, publishes it. A failure to persist the intent refuses the whole
// change; a failure to publish keeps it (the next publication carries it).
func (l *local) update(change func(*localState)) (before, after localState, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	before = l.cur
	after = before
	change(&after)
	if after == before {
		return before, after, nil
	}
	if after.Intent != before.Intent {
		if err := saveIntent(l.dir, after.Intent); err != nil {
			return before, before, err
		}
	}
	l.cur = after
	if after.State() != before.State() || after.Weight != before.Weight {
		err = l.publish(after.State(), after.Weight)
	}
	return before, after, err
}

type stateFile struct {
	Intent Intent `json:"intent"`
}

// stateFileName is the file in state_dir that keeps the intent.
const stateFileName = "state.json"

// loadIntent reads the persisted intent; a missing file means up.
func loadIntent(dir string) (Intent, error) {
	path := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return IntentUp, nil
	}
	if err != nil {
		return "", fmt.Errorf("read node state %s: %w", path, err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return "", fmt.Errorf("node state %s is corrupt: %v (delete it to start the node up, or write {\"intent\":\"stopped\"} to keep it out)", path, err)
	}
	switch sf.Intent {
	case IntentUp, IntentStopped:
		return sf.Intent, nil
	case IntentDraining:
		// A drain interrupted by a restart has lost its flows' owner anyway:
		// finish it as a stop.
		return IntentStopped, nil
	}
	return "", fmt.Errorf("node state %s: unknown intent %q (delete the file to start the node up)", path, sf.Intent)
}

// saveIntent writes the intent durably (see writeDurable).
func saveIntent(dir string, in Intent) error {
	b, err := json.Marshal(stateFile{Intent: in})
	if err != nil {
		return fmt.Errorf("encode node state: %w", err)
	}
	return writeDurable(dir, stateFileName, b)
}

// writeDurable writes dir/name: a temp file, fsynced, renamed over the old
// one, and the directory fsynced, so a crash or power loss leaves either the
// old content or the new, never a torn file.
func writeDurable(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
