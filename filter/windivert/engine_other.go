//go:build !(windows && amd64)

package windivert

import (
	"context"
	"errors"
)

// Run is the WinDivert engine, which exists only on Windows x64 (the
// WinDivert 2.2 driver has no ARM64 build and the binding passes 64-bit
// arguments in single registers). Here it fails at once.
func (e *Engine) Run(context.Context) error {
	return errors.New("filter engine: WinDivert exists only on Windows x64 (use engine kernel or nfqueue on Linux)")
}
