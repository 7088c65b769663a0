package upstream_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/upstream"
)

// answerFor answers every call with a fresh opaque token "minted-<n>" and
// expires_in seconds (0: none).
func answerFor(expiresIn int) answer {
	return func(n int64, _ url.Values) (int, http.Header, string) {
		return tokenAnswer("minted-"+itoa(n), expiresIn)
	}
}

// TestSubjectsNeverShare: the credential minted from one user's token is
// never another user's, whatever the order and concurrency.
func TestSubjectsNeverShare(t *testing.T) {
	e := newEnv(t)
	e.as.reply(func(_ int64, form url.Values) (int, http.Header, string) {
		return tokenAnswer("for-"+form.Get("subject_token"), 600)
	})
	m := e.minter(e.localStore(), nil)
	subjects := []upstream.Subject{e.subject("alice", time.Hour), e.subject("bob", time.Hour), e.subject("carol", time.Hour)}
	errs := make(chan error, 30)
	for i := range 30 {
		go func() {
			s := subjects[i%3]
			c, err := m.Token(context.Background(), s)
			if err == nil && c.Token != "for-"+s.Raw {
				t.Errorf("subject %d got another's credential", i%3)
			}
			errs <- err
		}()
	}
	for range 30 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.as.calls.Load(); n != 3 {
		t.Fatalf("%d calls; want one per subject", n)
	}
}

// TestSubjectHashMustMatch: a Subject whose Hash is not its token's would
// file one token's credential under another's key; it is refused before
// any call.
func TestSubjectHashMustMatch(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	alice, bob := e.subject("alice", time.Hour), e.subject("bob", time.Hour)
	mixed := upstream.Subject{Raw: alice.Raw, Hash: bob.Hash, Expiry: alice.Expiry}
	for _, s := range []upstream.Subject{mixed, {Raw: alice.Raw, Expiry: alice.Expiry}, {Hash: alice.Hash, Expiry: alice.Expiry}} {
		if _, err := m.Token(context.Background(), s); !isUnavailable(err) {
			t.Fatalf("Token = %v; want ErrUnavailable", err)
		}
	}
	if n := e.as.calls.Load(); n != 0 {
		t.Fatalf("%d calls; want none", n)
	}
	// bob's own credential is minted for bob, not served from alice's.
	mustToken(t, m, alice)
	if c := mustToken(t, m, bob); c.Source != upstream.SourceMinted {
		t.Fatalf("bob: %+v; want his own mint", c)
	}
}

// TestKeyCoversConfiguration: minters that ask differently never share a
// credential; ones that ask the same (scopes in any order) on the same
// resource do.
func TestKeyCoversConfiguration(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*upstream.Options)
		share bool
	}{
		{"same", func(*upstream.Options) {}, true},
		{"scopes in another order", func(o *upstream.Options) { o.Scopes = []string{"b", "a"} }, true},
		{"another resource name", func(o *upstream.Options) { o.Name = "docs" }, false},
		{"other scopes", func(o *upstream.Options) { o.Scopes = []string{"a", "b", "c"} }, false},
		{"another audience", func(o *upstream.Options) { o.Audience = []string{"https://other.example.com"} }, false},
		{"an extra resource", func(o *upstream.Options) { o.Resource = []string{upstreamAud} }, false},
		{"another client", func(o *upstream.Options) { o.ClientID = "other" }, false},
		{"another issuer", func(o *upstream.Options) { o.Issuer = "https://as2.example.com" }, false},
		{"with an actor", func(o *upstream.Options) { o.Actor = true }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			store := e.localStore()
			a := e.minter(store, func(o *upstream.Options) { o.Scopes = []string{"a", "b"} })
			b := e.minter(store, func(o *upstream.Options) { o.Scopes = []string{"a", "b"}; tc.mod(o) })
			s := e.subject("alice", time.Hour)
			mustToken(t, a, s)
			c := mustToken(t, b, s)
			if shared := c.Source == upstream.SourceLocal; shared != tc.share {
				t.Fatalf("second minter's source %s; want shared %v", c.Source, tc.share)
			}
		})
	}
}

// TestCacheLifetime: a credential is used until min(its expiry − margin,
// the incoming token's expiry, now + MaxTTL), and one that would be
// cached for no time is used once.
func TestCacheLifetime(t *testing.T) {
	cases := []struct {
		name       string
		expiresIn  int           // seconds; 0: none
		subjectTTL time.Duration // the incoming token's remaining life
		maxTTL     time.Duration
		noMargin   bool
		want       time.Duration // 0: not cached
	}{
		{"expires_in less the margin", 600, time.Hour, 0, false, 570 * time.Second},
		{"expires_in, without a margin", 600, time.Hour, 0, true, 600 * time.Second},
		{"the incoming token's expiry", 600, 100 * time.Second, 0, false, 100 * time.Second},
		{"MaxTTL", 7200, 3 * time.Hour, 0, false, time.Hour},
		{"a lower MaxTTL", 600, time.Hour, time.Minute, false, time.Minute},
		{"no expires_in: the default lifetime", 0, time.Hour, 0, false, 30 * time.Second},
		{"within the margin: used once, not cached", 20, time.Hour, 0, false, 0},
		{"the incoming token has no expiry: not cached", 600, 0, 0, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.as.reply(answerFor(tc.expiresIn))
			m := e.minter(e.localStore(), func(o *upstream.Options) {
				o.MaxTTL, o.RefreshAhead = tc.maxTTL, 0
				if tc.noMargin {
					o.ExpiryMargin = 0
				}
			})
			s := e.subject("alice", tc.subjectTTL)
			if tc.subjectTTL == 0 {
				s.Expiry = time.Time{}
			}
			first := mustToken(t, m, s)
			if tc.want == 0 {
				if c := mustToken(t, m, s); c.Source != upstream.SourceMinted || c.Token == first.Token {
					t.Fatalf("second Token %+v; want a new mint", c)
				}
				return
			}
			e.clock.Advance(tc.want - time.Millisecond)
			if c := mustToken(t, m, s); c.Source != upstream.SourceLocal || c.Token != first.Token {
				t.Fatalf("just before %v: %+v; want the cached credential", tc.want, c)
			}
			e.clock.Advance(time.Millisecond)
			if c := mustToken(t, m, s); c.Source != upstream.SourceMinted {
				t.Fatalf("at %v: %+v; want a new mint", tc.want, c)
			}
		})
	}
}

// TestForgetInProcess: without a shared tier, Forget drops the entry here.
func TestForgetInProcess(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	alice, bob := e.subject("alice", time.Hour), e.subject("bob", time.Hour)
	mustToken(t, m, alice)
	mustToken(t, m, bob)
	if err := m.Forget(context.Background(), alice.Hash); err != nil {
		t.Fatal(err)
	}
	if c := mustToken(t, m, alice); c.Source != upstream.SourceMinted {
		t.Fatalf("alice after Forget: %s; want a new mint", c.Source)
	}
	if c := mustToken(t, m, bob); c.Source != upstream.SourceLocal {
		t.Fatalf("bob after alice's Forget: %s; want his cached one", c.Source)
	}
	// A refusal is forgotten too.
	e.as.reply(fixed(400, `{"error":"invalid_grant"}`))
	carol := e.subject("carol", time.Hour)
	if _, err := m.Token(context.Background(), carol); err == nil {
		t.Fatal("want a refusal")
	}
	if err := m.Forget(context.Background(), carol.Hash); err != nil {
		t.Fatal(err)
	}
	e.as.reply(nil)
	if c := mustToken(t, m, carol); c.Source != upstream.SourceMinted {
		t.Fatalf("carol after Forget: %s", c.Source)
	}
}
