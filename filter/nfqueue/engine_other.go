//go:build !linux

package nfqueue

import (
	"context"
	"errors"
)

// Run is the NFQUEUE engine, which exists only on Linux; other systems have
// their own engine (WinDivert on Windows). Here it fails at once.
func (e *Engine) Run(context.Context) error {
	return errors.New("filter engine: NFQUEUE exists only on Linux")
}
