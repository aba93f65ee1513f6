package lab

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Require skips the test unless this machine can build labs (Linux, root,
// ip and nginx installed). With CI=true a missing prerequisite fails the
// test instead: in CI it is a broken machine, not an optional test.
func Require(t testing.TB) {
	t.Helper()
	var missing string
	switch {
	case runtime.GOOS != "linux":
		missing = "the lab needs Linux network namespaces"
	case os.Geteuid() != 0:
		missing = "the lab needs root (network namespaces)"
	default:
		for _, bin := range []string{"ip", "bridge", "nginx"} {
			if _, err := exec.LookPath(bin); err != nil {
				missing = bin + " not found in PATH (apt-get install iproute2 nginx-light)"
				break
			}
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lab prerequisite missing with CI=true: %s", missing)
	}
	t.Skipf("lab prerequisite missing: %s (set CI=true to fail instead)", missing)
}
