package lab

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ForTest builds a lab for t: it calls Require, builds the lab (30 s at
// most) and registers its Close with t.Cleanup. If the test failed by then,
// the tails of every log in the run dir (agents, nginx) go to the test log
// first.
func ForTest(t testing.TB, o Options) *Lab {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, o)
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.LogTails(t, 4<<10)
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab %s: %v", l.ID, err)
		}
	})
	return l
}

// LogTails writes the last max bytes of every log in the lab's run dir to
// the test log, for post-mortems of a failed test.
func (l *Lab) LogTails(t testing.TB, max int64) {
	t.Helper()
	var logs []string
	for _, pat := range []string{"*/*.log", "*/nginx/*.log", "*/nginx/*.out"} {
		m, _ := filepath.Glob(filepath.Join(l.RunDir, pat))
		logs = append(logs, m...)
	}
	for _, p := range logs {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			continue
		}
		t.Logf("--- %s (last %d bytes)\n%s", p, max, tailFile(p, max))
	}
}
