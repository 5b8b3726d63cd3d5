// Package wait pauses a piece of work for a while, or until the work's
// context ends: the pause between retries, polls and restarts.
package wait

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done, whichever comes first. It
// returns nil when d has passed, and ctx.Err() when ctx is (or already was)
// done; context.Cause(ctx) says why. A d of zero or less does not wait.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
