// Package testkit holds what several packages' tests share: a settable
// clock and a development issuer served over real HTTP on a loopback port.
// It is for tests only.
package testkit

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/devissuer"
)

// Clock is a settable, goroutine-safe clock that moves only when a test
// says so. It is the one fake clock of the tree's tests.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock set to the real time now, so that tokens minted
// by a real-time issuer are valid on it.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

// NewClockAt returns a clock set to t: a fixed instant, for tests whose
// failures should reproduce and which mint no real-time tokens.
func NewClockAt(t time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now reads the clock.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Issuer starts a development issuer on an httptest server (127.0.0.1, a
// free port), its identifier being the server's URL plus path. now may be
// nil. Tokens minted without an audience get audience. The server is
// closed when the test ends; it is returned so a test can wrap its handler.
func Issuer(tb testing.TB, alg, path, audience string, now func() time.Time) (*devissuer.Issuer, *httptest.Server) {
	tb.Helper()
	// The issuer's URL is the server's, so the handler is installed after
	// the server has started.
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	tb.Cleanup(srv.Close)
	iss, err := devissuer.New(srv.URL+path, alg, now)
	if err != nil {
		tb.Fatal(err)
	}
	iss.DefaultAudience = audience
	handler := iss.Handler()
	h.Store(&handler)
	return iss, srv
}
