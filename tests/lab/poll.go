package lab

import (
	"context"
	"fmt"
	"time"
)

// Poll calls f every 20 ms until it returns nil, d has passed or ctx ends,
// and returns nil or f's last error: the deadline-bound wait that tests use
// instead of sleeping ("until the VIP answers", "until web2 is down").
func Poll(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still failing after %s: %w", d, err)
		case <-t.C:
		}
	}
}

// pollInterval is how often the lab's waits re-check their condition.
const pollInterval = 20 * time.Millisecond
