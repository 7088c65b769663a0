package oauthflow_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/oauthflow"
)

// docServer serves Client ID Metadata Documents over TLS on loopback, under the name
// example.com (which its certificate holds), and counts the requests per path.
type docServer struct {
	t       *testing.T
	srv     *httptest.Server
	port    int
	release chan struct{} // closed at cleanup: the slow handlers return
	gate    chan struct{} // closed by open: /gate.json answers
	once    sync.Once

	mu   sync.Mutex
	hits map[string]int
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	d := &docServer{t: t, hits: map[string]int{}, release: make(chan struct{}), gate: make(chan struct{})}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(d.serve))
	t.Cleanup(func() { close(d.release); d.open(); d.srv.Close() })
	d.port = d.srv.Listener.Addr().(*net.TCPAddr).Port
	return d
}

// open lets /gate.json answer.
func (d *docServer) open() { d.once.Do(func() { close(d.gate) }) }

// url is the document URL of path under the name example.com.
func (d *docServer) url(path string) string {
	return fmt.Sprintf("https://example.com:%d%s", d.port, path)
}

func (d *docServer) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

// doc is a valid document for the URL it is served at, with extra members.
func doc(self, extra string) string {
	return `{"client_id":"` + self + `","client_name":"Doc Client","redirect_uris":["http://127.0.0.1:33418/cb","https://client.example/cb"],` +
		`"grant_types":["authorization_code","refresh_token"]` + extra + `}`
}

func (d *docServer) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.hits[r.URL.Path]++
	d.mu.Unlock()
	self := "https://" + r.Host + r.URL.RequestURI()
	if r.TLS == nil {
		self = "http://" + r.Host + r.URL.RequestURI()
	}
	json := func(body string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
	switch r.URL.Path {
	case "/client.json", "/a.json", "/b.json", "/c.json":
		json(doc(self, ""))
	case "/cached.json":
		w.Header().Set("Cache-Control", "public, max-age=600")
		json(doc(self, ""))
	case "/forever.json":
		w.Header().Set("Cache-Control", "max-age=99999999999999")
		json(doc(self, ""))
	case "/nostore.json":
		w.Header().Set("Cache-Control", "no-store, max-age=600")
		json(doc(self, ""))
	case "/exact.json", "/big.json":
		body := doc(self, `,"pad":"`)
		n := oauthflow.DefaultDocumentMaxBytes - len(body) - 2
		if r.URL.Path == "/big.json" {
			n++
		}
		json(body + strings.Repeat("x", n) + `"}`)
	case "/redirect.json":
		http.Redirect(w, r, "/client.json", http.StatusFound)
	case "/gate.json":
		<-d.gate
		json(doc(self, ""))
	case "/slow.json":
		select {
		case <-d.release:
		case <-r.Context().Done():
		}
	case "/trickle.json":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":`))
		w.(http.Flusher).Flush()
		select {
		case <-d.release:
		case <-r.Context().Done():
		}
	case "/html.json":
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(doc(self, "")))
	case "/other-id.json":
		json(doc(strings.Replace(self, "other-id", "client", 1), ""))
	case "/trailing-slash.json":
		json(doc(self+"/", ""))
	case "/secret.json":
		json(doc(self, `,"client_secret":"s3cret"`))
	case "/pkjwt.json":
		json(doc(self, `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://client.example/jwks"`))
	case "/http-redirect-uri.json":
		json(`{"client_id":"` + self + `","redirect_uris":["http://client.example/cb"]}`)
	case "/no-redirect-uris.json":
		json(`{"client_id":"` + self + `"}`)
	case "/500.json":
		http.Error(w, "oops", http.StatusInternalServerError)
	default:
		http.NotFound(w, r)
	}
}

// lookup points example.com at loopback, and mixed.example.com at a public and a loopback
// address.
func lookup(_ context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "example.com":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "mixed.example.com":
		return []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// documents builds the resolver for d's server, loopback allowed unless o says otherwise.
func (d *docServer) documents(o oauthflow.ClientDocumentsOptions, clock *testkit.Clock) *oauthflow.ClientDocuments {
	d.t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(d.srv.Certificate())
	o.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	o.Lookup = lookup
	if o.AllowNetworks == nil {
		o.AllowNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	if clock != nil {
		o.Now = clock.Now
	}
	docs, err := oauthflow.NewClientDocuments(o)
	if err != nil {
		d.t.Fatal(err)
	}
	return docs
}

func TestClientDocument(t *testing.T) {
	t.Parallel()
	d := newDocServer(t)
	docs := d.documents(oauthflow.ClientDocumentsOptions{}, nil)
	u := d.url("/client.json")
	c, err := docs.Client(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != u || !c.MetadataDocument || c.ClientName != "Doc Client" || c.TokenEndpointAuthMethod != "none" ||
		!c.RedirectURIAllowed("http://127.0.0.1:40000/cb") || !c.RedirectURIAllowed("https://client.example/cb") ||
		c.RedirectURIAllowed("https://client.example/cb2") || !c.AllowsGrant("refresh_token") {
		t.Errorf("client %+v", c)
	}
	// The caller's copy is its own.
	c.RedirectURIs[0] = "https://evil.example/cb"
	again, err := docs.Client(t.Context(), u)
	if err != nil || again.RedirectURIs[0] != "http://127.0.0.1:33418/cb" {
		t.Errorf("the cache was changed through a returned client: %+v, %v", again, err)
	}

	// The resolver routes a URL here, and the rest to the store.
	res, err := oauthflow.NewClientResolver(oauthflow.ClientResolverOptions{Documents: docs})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := res.ResolveClient(t.Context(), u); err != nil || c.ClientID != u {
		t.Errorf("ResolveClient(url) = %+v, %v", c, err)
	}
	if _, err := res.ResolveClient(t.Context(), "a-registered-looking-client-id-0123456789"); !errors.Is(err, oauthflow.ErrInvalidClient) {
		t.Errorf("a registered id without a store: %v", err)
	}
}

// Every way a document is refused; the policy's refusals connect nowhere.
func TestClientDocumentRefusals(t *testing.T) {
	t.Parallel()
	d := newDocServer(t)
	docs := d.documents(oauthflow.ClientDocumentsOptions{Timeout: 500 * time.Millisecond}, nil)
	cases := map[string]error{
		"/big.json":               oauthflow.ErrInvalidClient,
		"/redirect.json":          oauthflow.ErrInvalidClient,
		"/html.json":              oauthflow.ErrInvalidClient,
		"/other-id.json":          oauthflow.ErrInvalidClient,
		"/trailing-slash.json":    oauthflow.ErrInvalidClient,
		"/secret.json":            oauthflow.ErrInvalidClient,
		"/pkjwt.json":             oauthflow.ErrInvalidClient,
		"/http-redirect-uri.json": oauthflow.ErrInvalidClient,
		"/no-redirect-uris.json":  oauthflow.ErrInvalidClient,
		"/missing.json":           oauthflow.ErrInvalidClient,
		"/500.json":               oauthflow.ErrClientUnavailable,
		"/slow.json":              oauthflow.ErrClientUnavailable,
		"/trickle.json":           oauthflow.ErrClientUnavailable,
	}
	for path, want := range cases {
		c, err := docs.Client(t.Context(), d.url(path))
		if !errors.Is(err, want) || c != nil {
			t.Errorf("%s: %+v, %v; want %v", path, c, err, want)
		}
		if strings.Contains(fmt.Sprint(err), "s3cret") {
			t.Errorf("%s: the error quotes the document: %v", path, err)
		}
	}
	if n := d.count("/client.json"); n != 0 {
		t.Errorf("the redirect's target was fetched %d times", n)
	}
	if c, err := docs.Client(t.Context(), d.url("/exact.json")); err != nil || c == nil {
		t.Errorf("a document of exactly %d bytes: %v", oauthflow.DefaultDocumentMaxBytes, err)
	}

	// Loopback, as the network policy has it without AllowNetworks: refused before connecting.
	strict := d.documents(oauthflow.ClientDocumentsOptions{AllowNetworks: []netip.Prefix{}}, nil)
	for _, u := range []string{
		d.url("/a.json"),
		fmt.Sprintf("https://127.0.0.1:%d/b.json", d.port),
		fmt.Sprintf("https://[::ffff:127.0.0.1]:%d/c.json", d.port),
		fmt.Sprintf("https://mixed.example.com:%d/c.json", d.port),
	} {
		_, err := strict.Client(t.Context(), u)
		if !errors.Is(err, oauthflow.ErrInvalidClient) {
			t.Errorf("%s with loopback not allowed: %v, want ErrInvalidClient", u, err)
		}
	}
	for _, p := range []string{"/a.json", "/b.json", "/c.json"} {
		if n := d.count(p); n != 0 {
			t.Errorf("%s was fetched %d times from a refused address", p, n)
		}
	}
	if _, err := strict.Client(t.Context(), fmt.Sprintf("https://unknown.example.com:%d/a.json", d.port)); !errors.Is(err, oauthflow.ErrClientUnavailable) {
		t.Errorf("an unknown host: %v", err)
	}
}

// client_ids that cannot be a document's address are refused without a fetch.
func TestClientDocumentURLs(t *testing.T) {
	t.Parallel()
	d := newDocServer(t)
	plain := httptest.NewServer(http.HandlerFunc(d.serve))
	defer plain.Close()
	plainHost := plain.Listener.Addr().String()
	docs := d.documents(oauthflow.ClientDocumentsOptions{AllowHTTPHosts: []string{plainHost}}, nil)
	for _, u := range []string{
		"https://example.com",
		"https://example.com/",
		fmt.Sprintf("https://example.com:%d", d.port),
		d.url("/a/../client.json"),
		d.url("/a/./client.json"),
		d.url("/a/%2e%2e/client.json"),
		d.url("/a/%2E/client.json"),
		d.url("/client.json#x"),
		d.url("/client.json#"),
		fmt.Sprintf("https://user@example.com:%d/client.json", d.port),
		fmt.Sprintf("http://example.com:%d/client.json", d.port),
		fmt.Sprintf("HTTPS://example.com:%d/client.json", d.port),
		d.url("/client json"),
		d.url("/client\\json"),
		"https://example.com:0/client.json",
		"https://example.com:99999/client.json",
		"https://" + strings.Repeat("a", oauthflow.MaxClientIDLen) + ".example/client.json",
	} {
		if _, err := docs.Client(t.Context(), u); !errors.Is(err, oauthflow.ErrMalformedClientID) {
			t.Errorf("%q: %v, want ErrMalformedClientID", u, err)
		}
	}
	d.mu.Lock()
	if len(d.hits) != 0 {
		t.Errorf("fetched %v", d.hits)
	}
	d.mu.Unlock()
	// A query is allowed; plain http only for the configured test host.
	if _, err := docs.Client(t.Context(), d.url("/client.json?v=1")); err != nil {
		t.Errorf("a URL with a query: %v", err)
	}
	if c, err := docs.Client(t.Context(), "http://"+plainHost+"/client.json"); err != nil || c.ClientID != "http://"+plainHost+"/client.json" {
		t.Errorf("the allowed http host: %+v, %v", c, err)
	}
}

// Documents are used for their max-age, within MinCache and MaxCache; refusals for
// NegativeCache; the cache holds MaxCacheEntries.
func TestClientDocumentCache(t *testing.T) {
	t.Parallel()
	d := newDocServer(t)
	clock := testkit.NewClockAt(facadeClock)
	docs := d.documents(oauthflow.ClientDocumentsOptions{
		MinCache: time.Minute, MaxCache: time.Hour, NegativeCache: 10 * time.Second, MaxCacheEntries: 3,
	}, clock)
	ctx := t.Context()
	get := func(path string) error {
		_, err := docs.Client(ctx, d.url(path))
		return err
	}
	steps := []struct {
		advance time.Duration
		path    string
		fetches int
	}{
		{0, "/cached.json", 1},
		{599 * time.Second, "/cached.json", 1},
		{2 * time.Second, "/cached.json", 2}, // past max-age=600
		{0, "/client.json", 1},               // no max-age: MinCache
		{59 * time.Second, "/client.json", 1},
		{time.Second, "/client.json", 2},
		{0, "/nostore.json", 1}, // no-store wins over max-age: MinCache
		{time.Minute, "/nostore.json", 2},
		{0, "/forever.json", 1}, // clamped to MaxCache
		{time.Hour - time.Second, "/forever.json", 1},
		{time.Second, "/forever.json", 2},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		if err := get(s.path); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if n := d.count(s.path); n != s.fetches {
			t.Fatalf("step %d (%s): %d fetches, want %d", i, s.path, n, s.fetches)
		}
	}

	if err := get("/missing.json"); !errors.Is(err, oauthflow.ErrInvalidClient) {
		t.Fatal(err)
	}
	clock.Advance(9 * time.Second)
	if err := get("/missing.json"); !errors.Is(err, oauthflow.ErrInvalidClient) || d.count("/missing.json") != 1 {
		t.Fatalf("a refusal within NegativeCache: %v after %d fetches", err, d.count("/missing.json"))
	}
	clock.Advance(time.Second)
	if err := get("/missing.json"); !errors.Is(err, oauthflow.ErrInvalidClient) || d.count("/missing.json") != 2 {
		t.Fatalf("a refusal after NegativeCache: %v after %d fetches", err, d.count("/missing.json"))
	}

	// Three entries at most: /a, /b, /c push the others out, least recently used first.
	for _, p := range []string{"/a.json", "/b.json", "/c.json", "/a.json", "/forever.json", "/b.json"} {
		if err := get(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := [3]int{d.count("/a.json"), d.count("/b.json"), d.count("/forever.json")}; got != [3]int{1, 2, 3} {
		t.Errorf("fetches of a, b, forever: %v, want [1 2 3]", got)
	}
}

// Concurrent lookups of one document share one fetch; MaxFetches bounds the fetches running.
func TestClientDocumentConcurrency(t *testing.T) {
	t.Parallel()
	d := newDocServer(t)
	docs := d.documents(oauthflow.ClientDocumentsOptions{MaxFetches: 1, Timeout: 10 * time.Second}, nil)
	ctx := t.Context()

	first := make(chan error, 1)
	go func() {
		_, err := docs.Client(ctx, d.url("/gate.json"))
		first <- err
	}()
	for d.count("/gate.json") == 0 { // the one fetch slot is taken
		time.Sleep(time.Millisecond)
	}
	if _, err := docs.Client(ctx, d.url("/client.json")); !errors.Is(err, oauthflow.ErrClientUnavailable) {
		t.Errorf("a second fetch with MaxFetches 1: %v", err)
	}
	// A caller that gives up gets its answer at once; the fetch goes on for the others.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := docs.Client(cctx, d.url("/gate.json")); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled caller: %v", err)
	}
	// Lookups of the same document join the fetch running: with MaxFetches 1, one that
	// started a fetch of its own would fail at once.
	var started, done sync.WaitGroup
	errs := make(chan error, 15)
	for range 15 {
		started.Add(1)
		done.Go(func() {
			started.Done()
			_, err := docs.Client(ctx, d.url("/gate.json"))
			errs <- err
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // lets them reach the flight; the outcome does not depend on it
	d.open()
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a lookup sharing the fetch: %v", err)
		}
	}
	if err := <-first; err != nil {
		t.Errorf("the first lookup: %v", err)
	}
	if n := d.count("/gate.json"); n != 1 {
		t.Errorf("/gate.json fetched %d times, want 1", n)
	}
}

func TestClientErrorCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err    error
		code   string
		status int
	}{
		{fmt.Errorf("x: %w", oauthflow.ErrInvalidClient), "invalid_client", http.StatusUnauthorized},
		{fmt.Errorf("x: %w", oauthflow.ErrMalformedClientID), "invalid_request", http.StatusBadRequest},
		{fmt.Errorf("x: %w", oauthflow.ErrClientUnavailable), "temporarily_unavailable", http.StatusServiceUnavailable},
		{errors.New("other"), "server_error", http.StatusInternalServerError},
	} {
		if code, status := oauthflow.ClientErrorCode(c.err); code != c.code || status != c.status {
			t.Errorf("ClientErrorCode(%v) = %s %d", c.err, code, status)
		}
	}
}

func TestResolveClient(t *testing.T) {
	t.Parallel()
	s, err := oauthflow.NewFacadeStore(oauthflow.FacadeStoreOptions{Key: facadeKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := oauthflow.NewClientResolver(oauthflow.ClientResolverOptions{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for id, want := range map[string]error{
		"":                               oauthflow.ErrMalformedClientID,
		"a\x00b":                         oauthflow.ErrMalformedClientID,
		"é":                              oauthflow.ErrMalformedClientID,
		strings.Repeat("a", 2000):        oauthflow.ErrMalformedClientID,
		"unknown-client-id-0123456789ab": oauthflow.ErrInvalidClient,
		"https://client.example/doc":     oauthflow.ErrInvalidClient, // no documents configured
	} {
		if _, err := res.ResolveClient(ctx, id); !errors.Is(err, want) {
			t.Errorf("ResolveClient(%.20q) = %v, want %v", id, err, want)
		}
	}
	if _, err := oauthflow.NewClientResolver(oauthflow.ClientResolverOptions{}); err == nil {
		t.Error("a resolver with nothing to resolve from")
	}
}
