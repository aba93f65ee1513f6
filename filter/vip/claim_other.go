//go:build !linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Run is only implemented on Linux; other systems claim the VIP in their own
// engine.
func (c *Claim) Run(ctx context.Context, ready func()) error {
	return fmt.Errorf("vip: claiming a VIP with a virtual MAC is implemented only on Linux: %w", errors.ErrUnsupported)
}

// Cleanup has nothing to remove outside Linux.
func Cleanup(ctx context.Context, log *slog.Logger) error { return nil }
