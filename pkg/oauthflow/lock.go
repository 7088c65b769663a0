package oauthflow

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MinLockTTL is the shortest lock lifetime TryLock accepts: Redis's PX resolution.
const MinLockTTL = time.Millisecond

// TryLock takes the lock called name, shared by every replica on the same Redis (in process:
// by every user of this Store), if nobody holds it. It is for refreshing one session's tokens
// at a time, so that a rotating refresh token is never spent twice: lock on the session id,
// read the session again (another replica may have refreshed it meanwhile), refresh, store,
// release.
//
// It returns (release, true, nil) when it took the lock and (nil, false, nil) when another
// holder has it; it does not wait. In Redis the lock is SET NX PX with a new random token, and
// it lives for ttl unless renewed: while held, it is renewed every ttl/3 (PEXPIRE, only while
// the token is still there), so that a holder may keep it for as long as it needs, and a holder
// that dies loses it within ttl. In process it is an entry with an expiry, renewed the same way.
//
// Call release when done, as with a mutex: until then a goroutine renews the lock. Renewal
// stops when release is called, or when ctx ends: a holder whose context ends keeps the lock
// for at most ttl more, so a forgotten release does not hold it forever as long as ctx ends.
// A holder that must outlive its request uses context.WithoutCancel. Renewal also stops for
// good once it finds the lock gone (expired while Redis was unreachable, then taken); a failed
// renewal call is retried at the next period.
//
// name may be the session id itself: only its SHA-256 is stored.
//
// release stops the renewal, waits for it to end, and deletes the lock if this holder still
// holds it (a compare-and-delete script: never another holder's lock), even after ctx has
// ended. It may be called more than once. A release that cannot reach Redis leaves the lock to
// expire after ttl.
func (s *Store) TryLock(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool, err error) {
	if ttl < MinLockTTL {
		return nil, false, errors.New("session: lock ttl shorter than 1ms")
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	token, err := NewID()
	if err != nil {
		return nil, false, err
	}
	key := storageKey(lockPrefix, name)
	ok, err = s.b.lock(ctx, key, token, ttl)
	if err != nil || !ok {
		return nil, false, err
	}

	renewCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go s.renewLoop(renewCtx, key, token, ttl, done)

	var once sync.Once
	release = func() {
		once.Do(func() {
			stop()
			<-done
			_ = s.b.unlock(context.WithoutCancel(ctx), key, token)
		})
	}
	return release, true, nil
}

// renewLoop renews the lock every ttl/3 until ctx ends or the lock is found lost, then closes
// done.
func (s *Store) renewLoop(ctx context.Context, key, token string, ttl time.Duration, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(ttl / 3) // ttl >= 1ms, so the period is positive
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := s.b.renew(ctx, key, token, ttl)
		if err == nil && !held {
			return // expired and perhaps taken by another: nothing left to renew
		}
	}
}
