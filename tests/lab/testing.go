package lab

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/webfarm/farm/internal/testenv"
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
	testenv.Need(t, missing == "", "lab: "+missing)
}
