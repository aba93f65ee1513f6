package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/webfarm/farm/farm/view"
)

// The farm a node knew is kept in state_dir, so that after a restart it
// needs a majority of that farm (or the witness) before it serves: gossip
// alone starts with only the node itself, a majority of one.

// farmFileName is the file in state_dir that keeps the farm's members.
const farmFileName = "farm.json"

type farmFile struct {
	// Members are the names of the nodes that counted towards the majority.
	Members []string `json:"members"`
}

// loadFarm reads the remembered members; a missing file means none (a new
// node).
func loadFarm(dir string) ([]string, error) {
	path := filepath.Join(dir, farmFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the remembered farm %s: %w", path, err)
	}
	var f farmFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("remembered farm %s is corrupt: %v (delete it: the node then waits for a peer, or serves alone with gossip.bootstrap)", path, err)
	}
	return f.Members, nil
}

// counted returns the sorted names of the nodes that count towards the
// majority in v (not left, not excluded), or nil when v is not one to
// remember: only a joined node with quorum knows the farm.
func counted(v view.View) []string {
	if !v.Joined || !v.Quorum || v.Table == nil {
		return nil
	}
	var out []string
	for _, n := range v.Nodes {
		if !n.Left && !n.Excluded {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// kickRemember tells the remember loop that the view changed.
func (a *Agent) kickRemember() {
	select {
	case a.rememberKick <- struct{}{}:
	default:
	}
}

// rememberLoop writes the farm's members to state_dir when they change
// (off membership's publishing path: a file write must not stall gossip).
func (a *Agent) rememberLoop(ctx context.Context) error {
	last := slices.Clone(a.remembered)
	slices.Sort(last)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.rememberKick:
		}
		v := a.view.Load()
		if v == nil {
			continue
		}
		names := counted(*v)
		if names == nil || slices.Equal(names, last) {
			continue
		}
		b, _ := json.Marshal(farmFile{Members: names})
		if err := writeDurable(a.cfg.StateDir, farmFileName, b); err != nil {
			a.log.Error("Remembering the farm failed: after a restart this node may wait for a peer.", "err", err)
			continue
		}
		last = names
		a.log.Debug("Farm remembered.", "members", len(names))
	}
}
