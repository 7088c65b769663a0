package ssf_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/ssf"
)

const audience = "https://gateway.example.com/ssf"

// t0 is the fixed instant the tests' clocks start at.
var t0 = time.Date(2031, 3, 4, 10, 0, 0, 0, time.UTC)

// recorder is a revocation.Revoker that records what it is asked to
// revoke, or fails.
type recorder struct {
	mu  sync.Mutex
	got []revocation.Watermark
	err error // returned when set; nothing recorded unless it is ErrNoSharedTier
}

func (r *recorder) Revoke(_ context.Context, w revocation.Watermark) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && !errors.Is(r.err, revocation.ErrNoSharedTier) {
		return r.err
	}
	// ErrNoSharedTier: held here, as the contract says.
	r.got = append(r.got, w)
	return r.err
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *recorder) watermarks() []revocation.Watermark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]revocation.Watermark(nil), r.got...)
}

// fixture is one receiver on an httptest server, trusting one test
// transmitter.
type fixture struct {
	clock *testkit.Clock
	tr    *ssftest.Transmitter
	rec   *recorder
	recv  *ssf.Receiver
	url   string
	logs  *testkit.LockedBuffer
}

type fixtureOptions struct {
	transmitter ssftest.Options
	// settings changes the trusted transmitter's settings.
	settings func(*ssf.Transmitter)
	// options changes the receiver's options.
	options func(*ssf.Options)
	clock   *testkit.Clock
	tr      *ssftest.Transmitter
}

func newFixture(t testing.TB, fo fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{clock: fo.clock, rec: &recorder{}, logs: &testkit.LockedBuffer{}}
	if f.clock == nil {
		f.clock = testkit.NewClockAt(t0)
	}
	f.tr = fo.tr
	if f.tr == nil {
		o := fo.transmitter
		o.Audience = audience
		o.Now = f.clock.Now
		f.tr = ssftest.New(t, o)
	}
	setting := ssf.Transmitter{Issuer: f.tr.Issuer}
	if fo.settings != nil {
		fo.settings(&setting)
	}
	o := ssf.Options{
		Audience:     audience,
		Transmitters: []ssf.Transmitter{setting},
		Revoker:      f.rec,
		Now:          f.clock.Now,
		Logger:       slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if fo.options != nil {
		fo.options(&o)
	}
	var err error
	if f.recv, err = ssf.New(o); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.recv)
	t.Cleanup(srv.Close)
	f.url = srv.URL + ssf.DefaultPath
	return f
}

// push signs s and pushes it.
func (f *fixture) push(t testing.TB, s ssftest.SET) ssftest.Response {
	t.Helper()
	return ssftest.Push(t, f.url, f.tr.Sign(t, s), ssftest.PushOptions{})
}

// redisClient is a client of addr as the gateway makes them: no retries,
// deadlines from the context.
func redisClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
