//go:build !linux && !windows

package checkers

import (
	"context"
	"fmt"
	"runtime"
)

// pidAlive is not implemented on this OS.
func pidAlive(int) error {
	return fmt.Errorf("the process checker is not supported on %s", runtime.GOOS)
}

// processByName is not implemented on this OS.
func processByName(_ context.Context, name string) error {
	return fmt.Errorf("process %q: the process checker is not supported on %s", name, runtime.GOOS)
}
