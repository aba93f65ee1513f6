package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// enterNewNetns creates a network namespace with a unique name, removed in
// t.Cleanup, and moves the calling goroutine's thread into it for good: the
// thread stays locked and dies with the test goroutine, so no other
// goroutine ever runs in the namespace by accident. Commands the test runs
// (and the package's installer runs) inherit the namespace.
// Call it from the test goroutine itself, not from a subtest.
func enterNewNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("farmtest-rules-%d-%08x", os.Getpid(), rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	runtime.LockOSThread() // never unlocked: see above
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatalf("enter netns %s: %v", name, err)
	}
	return name
}

// sh runs a command (in the caller's namespace) and returns its output.
func sh(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
