// Package testenv holds the project's one rule for tests with prerequisites
// (root, network namespaces, tools): skip when they are missing on a
// developer's machine, fail when CI=true, because in CI a missing
// prerequisite is a broken machine, not an optional test. On Linux it also
// holds the helpers of the tests that run in network namespaces.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether missing prerequisites must fail tests (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Need skips t (or fails it under CI) with what when ok is false.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("prerequisite missing with CI=true: %s", what)
	}
	t.Skipf("prerequisite missing: %s (set CI=true to fail instead)", what)
}

// RequireRoot needs root and every tool in PATH; why says what root is for.
func RequireRoot(t testing.TB, why string, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root ("+why+")")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" in PATH")
		}
	}
	Need(t, len(missing) == 0, "needs "+strings.Join(missing, ", "))
}
