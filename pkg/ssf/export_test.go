package ssf

import (
	"context"
	"time"
)

// SetPollWait replaces the pause between polls, so that a test steps
// through them instead of sleeping.
func SetPollWait(r *Receiver, wait func(ctx context.Context, d time.Duration) error) {
	r.pollWait = wait
}
