package ssf_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/ssf"
)

// Pushes that are not RFC 8935 pushes: the method, the media type.
func TestNotAPush(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	set := f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET: %d Allow %q; want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	for _, ct := range []string{"application/jwt", "application/json", "text/plain", "application/secevent", "nonsense/"} {
		r := ssftest.Push(t, f.url, set, ssftest.PushOptions{ContentType: ct})
		if r.Status != http.StatusUnsupportedMediaType || r.Err != ssf.CodeInvalidRequest {
			t.Fatalf("Content-Type %q: %d %q; want 415 invalid_request", ct, r.Status, r.Body)
		}
	}
	// The media type is case-insensitive and may carry parameters.
	r := ssftest.Push(t, f.url, set, ssftest.PushOptions{ContentType: "Application/SecEvent+JWT; charset=utf-8"})
	if r.Status != http.StatusAccepted {
		t.Fatalf("Content-Type with parameters: %d %q; want 202", r.Status, r.Body)
	}
	if got := f.rec.watermarks(); len(got) != 1 {
		t.Fatalf("watermarks %+v; want one", got)
	}
}

// A transmitter with a push token: its pushes must carry it (401
// otherwise, with a Bearer challenge), and a push carrying another
// transmitter's token is refused (403 access_denied) whatever SET it
// carries.
func TestPushAuthorization(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClockAt(t0)
	a := ssftest.New(t, ssftest.Options{Audience: audience, Now: clock.Now})
	b := ssftest.New(t, ssftest.Options{Audience: audience, Now: clock.Now})
	rec := &recorder{}
	recv, err := ssf.New(ssf.Options{
		Audience: audience,
		Transmitters: []ssf.Transmitter{
			{Issuer: a.Issuer, PushToken: "token-of-a"},
			{Issuer: b.Issuer}, // no push token
		},
		Revoker: rec,
		Now:     clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, recv)
	sign := func(tr *ssftest.Transmitter) string {
		return tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
	}
	for _, tc := range []struct {
		name      string
		set       string
		token     string
		status    int
		code      string
		challenge string
	}{
		{"a's SET without a token", sign(a), "", http.StatusUnauthorized, ssf.CodeAuthenticationFailed, "Bearer"},
		{"a's SET with a wrong token", sign(a), "token-of-b", http.StatusUnauthorized, ssf.CodeAuthenticationFailed, `Bearer error="invalid_token"`},
		{"b's SET with a wrong token", sign(b), "guess", http.StatusUnauthorized, ssf.CodeAuthenticationFailed, `Bearer error="invalid_token"`},
		{"b's SET with a's token", sign(b), "token-of-a", http.StatusForbidden, ssf.CodeAccessDenied, ""},
		{"a's SET with its token", sign(a), "token-of-a", http.StatusAccepted, "", ""},
		{"b's SET without a token", sign(b), "", http.StatusAccepted, "", ""},
	} {
		r := ssftest.Push(t, url, tc.set, ssftest.PushOptions{Token: tc.token})
		if r.Status != tc.status || r.Err != tc.code || r.Header.Get("WWW-Authenticate") != tc.challenge {
			t.Errorf("%s: %d %q WWW-Authenticate %q; want %d %q %q", tc.name, r.Status, r.Body, r.Header.Get("WWW-Authenticate"), tc.status, tc.code, tc.challenge)
		}
	}
	if got := rec.watermarks(); len(got) != 2 {
		t.Fatalf("watermarks %+v; want the two accepted pushes'", got)
	}
	// Two Authorization headers are never read as one.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(sign(a)))
	req.Header.Set("Content-Type", ssf.ContentType)
	req.Header.Add("Authorization", "Bearer token-of-a")
	req.Header.Add("Authorization", "Bearer token-of-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("two Authorization headers: %d; want 401", resp.StatusCode)
	}
}

// A SET whose revocation could not be stored is answered 503 with
// Retry-After, and the same SET, pushed again once the store is back, is
// accepted: its jti was not remembered by the failed attempt — also in a
// shared Redis replay store.
func TestFailedRevocationIsRetried(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := newFixture(t, fixtureOptions{options: func(o *ssf.Options) {
		o.Replay = ssf.NewRedisReplay(redisClient(t, srv.Addr()))
		o.RetryAfter = 7 * time.Second
	}})
	s := ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(nil, ssftest.Opaque("sess-1"))}
	set := f.tr.Sign(t, s)

	f.rec.fail(errors.New("the shared tier is down"))
	r := ssftest.Push(t, f.url, set, ssftest.PushOptions{})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "7" {
		t.Fatalf("push while the revoker fails: %d Retry-After %q %q; want 503, Retry-After 7", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	f.rec.fail(nil)
	f.clock.Advance(7 * time.Second)
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("the same SET again: %d %q; want 202", r.Status, r.Body)
	}
	if got := f.rec.watermarks(); len(got) != 1 || got[0].SessionID != "sess-1" {
		t.Fatalf("watermarks %+v; want sess-1's", got)
	}
	// Now it is remembered.
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusBadRequest || r.Err != ssf.CodeInvalidRequest {
		t.Fatalf("a third time: %d %q; want 400 invalid_request", r.Status, r.Body)
	}
}

// Without a shared tier the revocation holds on this replica only, as
// configured: acknowledged.
func TestNoSharedTierAcknowledged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.rec.fail(revocation.ErrNoSharedTier)
	if r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}); r.Status != http.StatusAccepted {
		t.Fatalf("push: %d %q; want 202", r.Status, r.Body)
	}
	if got := f.rec.watermarks(); len(got) != 1 {
		t.Fatalf("watermarks %+v; want one", got)
	}
}

// Two replicas sharing Redis: a SET accepted by one is a replay at the
// other, and its jti is kept for max_age + leeway.
func TestReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a := newFixture(t, fixtureOptions{options: func(o *ssf.Options) {
		o.Replay = ssf.NewRedisReplay(redisClient(t, srv.Addr()))
		o.MaxAge = 10 * time.Minute
		o.Leeway = 30 * time.Second
	}})
	b := newFixture(t, fixtureOptions{tr: a.tr, clock: a.clock, options: func(o *ssf.Options) {
		o.Replay = ssf.NewRedisReplay(redisClient(t, srv.Addr()))
	}})
	set := a.tr.Sign(t, ssftest.SET{Event: ssf.EventCredentialChange, Subject: ssftest.IssSub(idp, "u")})
	if r := ssftest.Push(t, a.url, set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("replica A: %d %q; want 202", r.Status, r.Body)
	}
	r := ssftest.Push(t, b.url, set, ssftest.PushOptions{})
	if r.Status != http.StatusBadRequest || r.Err != ssf.CodeInvalidRequest || !strings.Contains(r.Description, "jti was received before") {
		t.Fatalf("replica B: %d %q; want 400 invalid_request, a replay", r.Status, r.Body)
	}
	if got := b.rec.watermarks(); len(got) != 0 {
		t.Fatalf("replica B revoked %+v", got)
	}
	keys, err := redistest.Do(srv.Addr(), "KEYS", ssf.RedisKeyPrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	list, _ := keys.([]any)
	if len(list) != 1 {
		t.Fatalf("keys %v; want one", keys)
	}
	pttl, err := redistest.Do(srv.Addr(), "PTTL", list[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := pttl.(int64); ms <= (10*time.Minute).Milliseconds() || ms > (10*time.Minute+30*time.Second).Milliseconds() {
		t.Fatalf("PTTL %v ms; want max_age + leeway (10m30s)", pttl)
	}
}

// A replay store that cannot answer is a 503: the SET is neither accepted
// unchecked nor refused for good.
func TestReplayStoreDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := newFixture(t, fixtureOptions{options: func(o *ssf.Options) {
		o.Replay = ssf.NewRedisReplay(redisClient(t, srv.Addr()))
	}})
	set := f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
	srv.Stop()
	r := ssftest.Push(t, f.url, set, ssftest.PushOptions{})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "5" {
		t.Fatalf("push with Redis down: %d Retry-After %q; want 503, 5", r.Status, r.Header.Get("Retry-After"))
	}
	if got := f.rec.watermarks(); len(got) != 0 {
		t.Fatalf("watermarks %+v; want none", got)
	}
	srv.Restart()
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("push with Redis back: %d %q; want 202", r.Status, r.Body)
	}
}

// Keys: found through the transmitter's configuration document (with a
// path, SSF 1.0), or configured; a document naming another issuer,
// or a key set that cannot be fetched, is a 503 (retry), never a 400.
func TestTransmitterKeys(t *testing.T) {
	t.Parallel()
	t.Run("configuration document of an issuer with a path", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOptions{transmitter: ssftest.Options{Path: "/tenants/one"}})
		if want := f.tr.Server.URL + "/.well-known/ssf-configuration/tenants/one"; f.tr.ConfigurationURL() != want {
			t.Fatalf("the test transmitter serves at %s", f.tr.ConfigurationURL())
		}
		if got, _ := ssf.ConfigurationURL(f.tr.Issuer); got != f.tr.ConfigurationURL() {
			t.Fatalf("ConfigurationURL %q; want %q", got, f.tr.ConfigurationURL())
		}
		if r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}); r.Status != http.StatusAccepted {
			t.Fatalf("push: %d %q", r.Status, r.Body)
		}
		if f.tr.KeyFetches() != 1 {
			t.Fatalf("%d key fetches; want 1", f.tr.KeyFetches())
		}
	})
	t.Run("jwks_uri configured", func(t *testing.T) {
		t.Parallel()
		// The document names a key set that does not exist: never read.
		f := newFixture(t, fixtureOptions{
			transmitter: ssftest.Options{JWKSURI: "http://127.0.0.1:1/none"},
			settings:    func(s *ssf.Transmitter) { s.JWKSURI = s.Issuer + "/jwks" },
		})
		if r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}); r.Status != http.StatusAccepted {
			t.Fatalf("push: %d %q", r.Status, r.Body)
		}
	})
	t.Run("a document naming another issuer", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOptions{transmitter: ssftest.Options{DocumentIssuer: "https://evil.example.com"}})
		r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("push: %d %q; want 503", r.Status, r.Body)
		}
		if f.tr.KeyFetches() != 0 {
			t.Fatal("keys fetched from a document naming another issuer")
		}
	})
	t.Run("the key set cannot be fetched", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOptions{settings: func(s *ssf.Transmitter) { s.JWKSURI = "http://127.0.0.1:1/jwks" }})
		r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")})
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("push: %d %q; want 503", r.Status, r.Body)
		}
	})
	t.Run("Run loads every transmitter's keys", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOptions{})
		if got := f.recv.NotReady(); len(got) != 1 || got[0] != f.tr.Issuer {
			t.Fatalf("NotReady before Run: %v", got)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { f.recv.Run(ctx); close(done) }()
		for len(f.recv.NotReady()) != 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
	})
}

// Events are counted by transmitter, event and result; a revocation is
// logged with its event type and transmitter, never with the SET.
func TestMetricsAndLog(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	f := newFixture(t, fixtureOptions{options: func(o *ssf.Options) { o.Meter = meter }})
	other := ssftest.New(t, ssftest.Options{Audience: audience, Now: f.clock.Now})

	good := f.tr.Sign(t, ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.IssSub(idp, "user-1")})
	for _, set := range []string{
		good,
		good, // replayed
		f.tr.Sign(t, ssftest.SET{Event: ssf.EventVerification}),
		f.tr.Sign(t, ssftest.SET{Event: "urn:example:new"}),
		f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u"), Key: f.tr.Rogue}),
		other.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}),
	} {
		ssftest.Push(t, f.url, set, ssftest.PushOptions{})
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[[3]string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "extauthz_ssf_events" {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				label := func(k string) string { v, _ := p.Attributes.Value(attribute.Key(k)); return v.AsString() }
				if label("delivery") != "push" {
					t.Errorf("delivery %q; want push", label("delivery"))
				}
				got[[3]string{label("transmitter"), label("event"), label("result")}] = p.Value
			}
		}
	}
	want := map[[3]string]int64{
		{f.tr.Issuer, "session-revoked", "revoked"}:   1,
		{f.tr.Issuer, "session-revoked", "replayed"}:  1,
		{f.tr.Issuer, "verification", "acknowledged"}: 1,
		{f.tr.Issuer, "other", "ignored"}:             1,
		{f.tr.Issuer, "none", "invalid_key"}:          1,
		{"unknown", "none", "invalid_issuer"}:         1,
	}
	if len(got) != len(want) {
		t.Fatalf("extauthz_ssf_events %v\nwant %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("extauthz_ssf_events %v\nwant %v", got, want)
		}
	}

	logs := f.logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"msg":"ssf: revocation stored"`) {
			line = l
		}
	}
	for _, want := range []string{`"level":"INFO"`, `"transmitter":"` + f.tr.Issuer + `"`, `"event":"` + ssf.EventSessionRevoked + `"`, `"selector":"issuer,subject"`} {
		if !strings.Contains(line, want) {
			t.Errorf("revocation log line %s lacks %s", line, want)
		}
	}
	if strings.Contains(logs, good) || strings.Contains(logs, strings.Split(good, ".")[1]) {
		t.Error("a SET is in the log")
	}
}

// serve serves h on an httptest server and returns its push URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + ssf.DefaultPath
}

// A transmitter that rotates its keys: a SET signed with a key newer than
// the key set fetched is a 503 (the refetch an unknown kid causes is
// rate-limited; a 400 would lose the SET), and is accepted once the key
// set has been fetched again. A kid still unknown after a fetch that
// followed the SET is a 400.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	if r := f.push(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u")}); r.Status != http.StatusAccepted {
		t.Fatalf("first push: %d %q", r.Status, r.Body)
	}
	next, err := ssftest.NewKey("ES256", "es-2")
	if err != nil {
		t.Fatal(err)
	}
	f.tr.Publish(next)
	f.clock.Advance(time.Second)
	set := f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("v"), Key: next})
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a SET signed with the new key, before a refetch is allowed: %d %q; want 503", r.Status, r.Body)
	}
	f.clock.Advance(10 * time.Second) // jwks unknown_kid_min_interval
	if r := ssftest.Push(t, f.url, set, ssftest.PushOptions{}); r.Status != http.StatusAccepted {
		t.Fatalf("the same SET once a refetch is allowed: %d %q; want 202", r.Status, r.Body)
	}
	if f.tr.KeyFetches() != 2 {
		t.Fatalf("%d key fetches; want 2", f.tr.KeyFetches())
	}
	// A kid the set fetched after the SET's iat does not have: refused.
	unknown := f.tr.Sign(t, ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("w"),
		Header: map[string]any{"kid": "es-9"}, IssuedAt: f.clock.Now().Add(-time.Second)})
	if r := ssftest.Push(t, f.url, unknown, ssftest.PushOptions{}); r.Status != http.StatusBadRequest || r.Err != ssf.CodeInvalidKey {
		t.Fatalf("an unknown kid: %d %q; want 400 invalid_key", r.Status, r.Body)
	}
}
