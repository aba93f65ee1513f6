package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// CleanupPrefix removes every lab of this prefix, live or not: it kills the
// processes recorded in their run dirs (by PID and start time, nothing
// else), deletes their namespaces and removes their run dirs. It is for a
// crashed run and for `farmlab down`; a test package should use a prefix of
// its own so it never removes another package's live lab (or use
// CleanupStale).
func CleanupPrefix(prefix string) error { return cleanup(prefix, false) }

// CleanupStale is CleanupPrefix limited to labs whose building process has
// exited: safe at the start of a test binary while other binaries run labs
// of the same prefix.
func CleanupStale(prefix string) error { return cleanup(prefix, true) }

func cleanup(prefix string, staleOnly bool) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("cleanup: prefix %q: want 1-10 characters of [a-z0-9] starting with a letter", prefix)
	}
	// Group everything by lab ID: run dirs and namespaces.
	type found struct {
		dir string
		ns  []string
	}
	labs := map[string]*found{}
	get := func(id string) *found {
		if labs[id] == nil {
			labs[id] = &found{}
		}
		return labs[id]
	}
	var errs []error
	if ents, err := os.ReadDir(RunBase); err == nil {
		for _, e := range ents {
			if id, ok := ownedBy(prefix, e.Name()); ok && id == e.Name() && e.IsDir() {
				get(id).dir = filepath.Join(RunBase, id)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("cleanup: list %s: %w", RunBase, err))
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if id, ok := ownedBy(prefix, e.Name()); ok && id != e.Name() {
				get(id).ns = append(get(id).ns, e.Name())
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("cleanup: list /run/netns: %w", err))
	}
	ids := make([]string, 0, len(labs))
	for id := range labs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f := labs[id]
		if staleOnly && f.dir != "" && !stale(f.dir) {
			continue
		}
		if f.dir != "" {
			if err := killRecorded(f.dir); err != nil {
				errs = append(errs, fmt.Errorf("cleanup lab %s: %w", id, err))
			}
		}
		if err := deleteNamespaces(f.ns); err != nil {
			errs = append(errs, fmt.Errorf("cleanup lab %s: %w", id, err))
		}
		if f.dir != "" {
			if err := os.RemoveAll(f.dir); err != nil {
				errs = append(errs, fmt.Errorf("cleanup lab %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// stale reports whether the lab in dir has lost its builder. A dir without
// a readable manifest is a lab being built (New writes the manifest right
// after claiming the dir) unless it is older than a minute.
func stale(dir string) bool {
	var l Layout
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil || json.Unmarshal(b, &l) != nil {
		st, err := os.Stat(dir)
		return err != nil || time.Since(st.ModTime()) > time.Minute
	}
	return !ownerAlive(l.Owner)
}
