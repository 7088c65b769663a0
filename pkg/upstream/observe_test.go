package upstream_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/extauthz/extauthz/pkg/upstream"
)

// TestCallerGivingUpDoesNotCancelTheMint: the mint serves every waiter;
// the first caller leaving does not cancel it for the next.
func TestCallerGivingUpDoesNotCancelTheMint(t *testing.T) {
	e := newEnv(t)
	m := e.minter(e.localStore(), nil)
	s := e.subject("alice", time.Hour)
	arrived, release := e.as.holdAnswers(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Token(ctx, s)
		errc <- err
	}()
	<-arrived
	cancel()
	if err := <-errc; !isUnavailable(err) {
		t.Fatalf("the caller that gave up: %v; want ErrUnavailable", err)
	}
	done := make(chan upstream.Credential, 1)
	go func() { done <- mustTokenNoFatal(t, m, s) }()
	release()
	if c := <-done; c.Token != "minted-1" {
		t.Fatalf("the next caller: %+v; want the mint the first started", c)
	}
	if n := e.as.calls.Load(); n != 1 {
		t.Fatalf("%d calls; want 1", n)
	}
}

// recorder is an Observer that records events.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Exchange(resource, mode, result string, _ time.Duration) {
	r.add(fmt.Sprintf("exchange %s %s %s", resource, mode, result))
}

func (r *recorder) Lookup(resource, tier string, hit bool) {
	r.add(fmt.Sprintf("lookup %s %s %v", resource, tier, hit))
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func TestObserverAndSpans(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	m := e.minter(e.localStore(), func(o *upstream.Options) { o.Observer, o.Tracer = rec, tp.Tracer("test") })
	alice, bob, carol := e.subject("alice", time.Hour), e.subject("bob", time.Hour), e.subject("carol", time.Hour)

	mustToken(t, m, alice)
	mustToken(t, m, alice)
	e.as.reply(fixed(403, `{"error":"access_denied"}`))
	_, _ = m.Token(context.Background(), bob)
	_, _ = m.Token(context.Background(), bob)
	e.as.reply(fixed(500, `{}`))
	_, _ = m.Token(context.Background(), carol)

	want := []string{
		"lookup files none false", "exchange files exchange ok",
		"lookup files local true",
		"lookup files none false", "exchange files exchange refused",
		"lookup files local true",
		"lookup files none false", "exchange files exchange error",
	}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}

	ended := spans.Ended()
	if len(ended) != 3 {
		t.Fatalf("%d spans; want one per mint", len(ended))
	}
	secrets := append(e.as.issuedTokens(), alice.Raw, bob.Raw, carol.Raw, clientSecret)
	for i, result := range []string{"ok", "refused", "error"} {
		sp := ended[i]
		attrs := map[string]string{}
		for _, a := range sp.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
			for _, s := range secrets {
				if strings.Contains(a.Value.String(), s) {
					t.Errorf("span attribute %s holds a secret", a.Key)
				}
			}
		}
		if sp.Name() != "extauthz.upstream_token" || attrs["resource"] != "files" || attrs["mode"] != "exchange" || attrs["result"] != result {
			t.Errorf("span %d: %s %v; want extauthz.upstream_token, files, exchange, %s", i, sp.Name(), attrs, result)
		}
	}
}

// TestTokenHitAllocations: a hit in process allocates nothing.
func TestTokenHitAllocations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, mode := range []string{upstream.ModeExchange, upstream.ModeClientCredentials} {
		m := e.minter(e.localStore(), func(o *upstream.Options) { o.Mode = mode })
		s := e.subject("alice", time.Hour)
		mustToken(t, m, s)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := m.Token(ctx, s); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: a hit allocates %v times; want 0", mode, allocs)
		}
	}
}

func BenchmarkTokenHit(b *testing.B) {
	for _, mode := range []string{upstream.ModeExchange, upstream.ModeClientCredentials} {
		b.Run(mode, func(b *testing.B) {
			store, err := upstream.NewStore(upstream.StoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			as := newTokenServer(b)
			m, err := upstream.New(upstream.Options{
				Name: "files", Mode: mode, Issuer: issuer, ClientID: clientID, ClientSecret: clientSecret,
				TokenEndpoint: as.endpoint, Audience: []string{upstreamAud}, Store: store,
			})
			if err != nil {
				b.Fatal(err)
			}
			raw := strings.Repeat("x", 900) // about a JWT's size
			s := upstream.Subject{Raw: raw, Hash: hashOf(raw), Expiry: time.Now().Add(time.Hour)}
			ctx := context.Background()
			if _, err := m.Token(ctx, s); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.Token(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
