//go:build !linux

package rules

import (
	"context"
	"errors"
)

// errNotLinux is returned where the rules are nftables/iptables rules:
// other systems filter with their own engine (WinDivert on Windows).
var errNotLinux = errors.New("farm rules: nftables/iptables rules exist only on Linux")

// Install is Linux-only; elsewhere it fails.
func Install(ctx context.Context, s Spec) error { return errNotLinux }

// SetReset is Linux-only: opening the reset window fails, closing it has
// nothing to do.
func SetReset(ctx context.Context, s Spec, on bool) error {
	if on {
		return errNotLinux
	}
	return nil
}

// Remove is Linux-only; elsewhere there is nothing to remove.
func Remove(ctx context.Context) error { return nil }

// RemoveNFQueue is Linux-only; elsewhere there is nothing to remove.
func RemoveNFQueue(ctx context.Context) error { return nil }

// Cleanup is Linux-only; elsewhere there is nothing to remove.
func Cleanup(ctx context.Context) error { return nil }
