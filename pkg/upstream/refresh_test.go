package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/upstream"
)

// Default timings with expires_in 600: used until 570s, refreshed ahead
// from 570 − 0.2 × 570 = 456s.
const (
	refreshFrom = 456 * time.Second
	usedUntil   = 570 * time.Second
)

// TestRefreshAhead: a hit late in an entry's life answers at once with it
// and starts one background re-mint, which replaces the entry.
func TestRefreshAhead(t *testing.T) {
	e := newEnv(t)
	// The re-mint is held at the endpoint until the test has seen it
	// arrive. On a loaded machine (CI runs the packages side by side)
	// getting it there can take much of the default 2 s Timeout, and a
	// re-mint that times out is retried only after RetryAfter, which the
	// test's frozen clock never reaches: the test would wait in vain.
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.Timeout = time.Minute })
	s := e.subject("alice", 2*time.Hour)
	first := mustToken(t, m, s)
	e.clock.Advance(refreshFrom - time.Millisecond)
	mustToken(t, m, s)
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls before the refresh point; want 1", n)
	}
	arrived, release := e.as.holdAnswers(t)
	e.clock.Advance(time.Millisecond)
	// The re-mint is held at the endpoint: these requests are answered
	// without it, with the entry they have.
	for range 20 {
		if c := mustToken(t, m, s); c.Token != first.Token || c.Source != upstream.SourceLocal {
			t.Fatalf("during the refresh: %+v; want the cached credential", c)
		}
	}
	<-arrived
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls; want exactly one re-mint", n)
	}
	release()
	waitFor(t, "the refreshed credential replaces the old", func() bool { return mustToken(t, m, s).Token == "minted-2" })
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls; want exactly one re-mint", n)
	}
	// The new entry lives from now.
	e.clock.Advance(refreshFrom - time.Second)
	if c := mustToken(t, m, s); c.Token != "minted-2" || e.as.calls.Load() != 2 {
		t.Fatalf("%+v after %d calls; want minted-2 without a call", c, e.as.calls.Load())
	}
}

// TestRefreshAheadAcrossTheFleet: of two replicas hitting the same entry
// late, one re-mints; the other takes its result from the shared tier.
func TestRefreshAheadAcrossTheFleet(t *testing.T) {
	e, addr := newEnv(t), startRedis(t)
	a, b := e.sharedStore(addr, testKey), e.sharedStore(addr, testKey)
	ma, mb := e.minter(a.store, nil), e.minter(b.store, nil)
	s := e.subject("alice", 2*time.Hour)
	mustToken(t, ma, s)
	if c := mustToken(t, mb, s); c.Source != upstream.SourceRedis {
		t.Fatalf("B: %s", c.Source)
	}
	arrived, release := e.as.holdAnswers(t)
	e.clock.Advance(refreshFrom)
	if c := mustToken(t, ma, s); c.Token != "minted-1" {
		t.Fatalf("A: %+v", c)
	}
	<-arrived // A re-mints, holding the lock
	triesB := b.locker.tries.Load()
	if c := mustToken(t, mb, s); c.Token != "minted-1" {
		t.Fatalf("B: %+v", c)
	}
	waitFor(t, "B tries the lock", func() bool { return b.locker.tries.Load() > triesB })
	release()
	waitFor(t, "A holds the new credential", func() bool { return mustToken(t, ma, s).Token == "minted-2" })
	// B tries again once the lock's hold (3s) has passed since its
	// attempt ended, and finds A's. When that attempt ended is B's
	// business: time moves on until B has it.
	e.clock.Advance(3 * time.Second)
	waitFor(t, "B holds the new credential", func() bool {
		e.clock.Advance(10 * time.Millisecond)
		return mustToken(t, mb, s).Token == "minted-2"
	})
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls; want one re-mint for the fleet", n)
	}
}

// TestRefreshAheadFailure: a re-mint that fails leaves the entry in use,
// and is not retried before the server's Retry-After: a server in trouble
// is not called at the request rate.
func TestRefreshAheadFailure(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	s := e.subject("alice", 2*time.Hour)
	mustToken(t, m, s)
	e.as.reply(func(int64, url.Values) (int, http.Header, string) {
		return 503, http.Header{"Retry-After": {"10"}}, `{}`
	})
	e.clock.Advance(refreshFrom)
	mustToken(t, m, s)
	waitFor(t, "the failed re-mint", func() bool { return e.as.calls.Load() == 2 })
	for range 50 {
		if c := mustToken(t, m, s); c.Token != "minted-1" {
			t.Fatalf("%+v; want the entry still in use", c)
		}
	}
	e.clock.Advance(10*time.Second - time.Millisecond)
	mustToken(t, m, s)
	if n := e.as.calls.Load(); n != 2 {
		t.Fatalf("%d calls before Retry-After passed; want 2", n)
	}
	e.clock.Advance(time.Millisecond)
	mustToken(t, m, s)
	waitFor(t, "a second attempt after Retry-After", func() bool { return e.as.calls.Load() == 3 })
}

// TestRefreshAheadRefused: a server that now refuses (the incoming token
// was revoked there) is believed: the refusal replaces the credential.
func TestRefreshAheadRefused(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	s := e.subject("alice", 2*time.Hour)
	mustToken(t, m, s)
	e.as.reply(fixed(400, `{"error":"invalid_grant"}`))
	e.clock.Advance(refreshFrom)
	mustToken(t, m, s)
	waitFor(t, "the refusal replaces the credential", func() bool {
		_, err := m.Token(context.Background(), s)
		return errors.Is(err, upstream.ErrRefused)
	})
}

// TestNoRefreshWhenTheSubjectEnds: an entry that ends with the incoming
// token cannot be extended by a re-mint, so none is made.
func TestNoRefreshWhenTheSubjectEnds(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	s := e.subject("alice", 100*time.Second)
	mustToken(t, m, s)
	e.clock.Advance(99 * time.Second)
	mustToken(t, m, s)
	e.clock.Advance(999 * time.Millisecond)
	mustToken(t, m, s)
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls; want no re-mint", n)
	}
}

func TestRefreshAheadDisabled(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.RefreshAhead = 0 })
	s := e.subject("alice", 2*time.Hour)
	mustToken(t, m, s)
	e.clock.Advance(usedUntil - time.Millisecond)
	mustToken(t, m, s)
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls; want no re-mint", n)
	}
}
