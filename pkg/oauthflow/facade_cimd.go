package oauthflow

import (
	"cmp"
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of [ClientDocumentsOptions].
const (
	DefaultDocumentTimeout       = 5 * time.Second
	DefaultDocumentMaxBytes      = 5 << 10
	DefaultDocumentMinCache      = 5 * time.Minute
	DefaultDocumentMaxCache      = 24 * time.Hour
	DefaultDocumentNegativeCache = 30 * time.Second
	DefaultDocumentCacheEntries  = 1000
	DefaultDocumentFetches       = 16
)

// MaxClientIDLen bounds a client_id, a metadata document's URL included.
const MaxClientIDLen = 1024

// Client lookup failures, for the authorization and token endpoints to answer (see
// [ClientErrorCode]). Errors wrap one of them and never quote a response body.
var (
	// ErrInvalidClient: no such client, or its metadata document was refused (unreachable by
	// policy, a redirect, not JSON, too large, invalid, or for another client_id).
	ErrInvalidClient = errors.New("facade: invalid client")
	// ErrMalformedClientID: the client_id parameter cannot name any client (too long, not
	// printable, or a URL that is not a valid metadata document address).
	ErrMalformedClientID = errors.New("facade: malformed client_id")
	// ErrClientUnavailable: whether the client exists cannot be told now (the store failed,
	// the document's server timed out, failed or was busy, or too many fetches are running).
	ErrClientUnavailable = errors.New("facade: client lookup unavailable")
)

// ClientErrorCode maps a client lookup error to the OAuth error code and HTTP status an
// endpoint answers with: invalid_client (401, as RFC 6749 §5.2 has it at the token endpoint),
// invalid_request (400), temporarily_unavailable (503), or server_error (500) for anything
// else.
func ClientErrorCode(err error) (code string, status int) {
	switch {
	case errors.Is(err, ErrMalformedClientID):
		return "invalid_request", http.StatusBadRequest
	case errors.Is(err, ErrInvalidClient):
		return "invalid_client", http.StatusUnauthorized
	case errors.Is(err, ErrClientUnavailable):
		return "temporarily_unavailable", http.StatusServiceUnavailable
	}
	return "server_error", http.StatusInternalServerError
}

// ClientDocumentsOptions configures [NewClientDocuments].
type ClientDocumentsOptions struct {
	// Timeout bounds one fetch from dialing to the last byte of the body (default 5s).
	Timeout time.Duration
	// MaxBytes bounds a document (default 5 KiB); a larger one is refused, not truncated.
	MaxBytes int64
	// AllowNetworks are networks a document may be fetched from although the default policy
	// refuses them (loopback, private, link-local, CGNAT, unique local, …): a test server, or
	// clients inside the network on purpose. Empty: public addresses only.
	AllowNetworks []netip.Prefix
	// AllowHTTPHosts are hosts (host or host:port, as in the URL) whose documents may be
	// fetched over plain http: development and tests only. Their addresses still go through
	// the address policy.
	AllowHTTPHosts []string
	// TLSConfig is cloned for the fetches (nil: the system roots); tests set RootCAs.
	TLSConfig *tls.Config
	// Lookup resolves a host name (nil: the system resolver); tests point names at loopback.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// MinCache and MaxCache bound how long a document is used: its Cache-Control max-age
	// clamped to [MinCache, MaxCache]; MinCache when it has none, or no-cache or no-store
	// (defaults 5m and 24h).
	MinCache, MaxCache time.Duration
	// NegativeCache is how long a refusal or failure is remembered, so that a client_id that
	// fails is not fetched again at every request (default 30s).
	NegativeCache time.Duration
	// MaxCacheEntries bounds the cache, least recently used out first (default 1000).
	MaxCacheEntries int
	// MaxFetches bounds the fetches running at once (default 16); a lookup that would start
	// one more is ErrClientUnavailable, not cached.
	MaxFetches int
	// Now is the cache's clock (nil: time.Now).
	Now func() time.Time
	// Logger receives one record per fetch that fails (nil: discard).
	Logger *slog.Logger
	// OnFetch, when set, is told the outcome of every fetch (nil: a usable document), for
	// metrics. It must be quick.
	OnFetch func(err error)
}

// ClientDocuments resolves client_ids that are URLs by fetching the Client ID Metadata
// Document there (draft-ietf-oauth-client-id-metadata-document; MCP's preferred way for a
// client to identify itself), safely: https only, the addresses of the host checked before
// and while connecting, no redirects followed, no proxy, a time limit and a size limit, and
// the document's client_id equal to the URL. Documents and refusals are cached. It is safe
// for concurrent use.
//
// Redirects are not followed, not even to the same origin: the document must name itself as
// client_id, so a redirect could only lead to a document that does not, and every hop would
// be one more request the client chooses the gateway to make.
type ClientDocuments struct {
	client                     *http.Client
	timeout                    time.Duration
	maxBytes                   int64
	httpHosts                  map[string]bool
	minCache, maxCache, negTTL time.Duration
	maxEntries                 int
	now                        func() time.Time
	log                        *slog.Logger
	onFetch                    func(error)
	sem                        chan struct{}
	flight                     singleflight.Group

	mu      sync.Mutex
	entries map[string]*list.Element // of *docEntry
	lru     list.List                // most recently used first
}

type docEntry struct {
	url    string
	client *RegisteredClient // nil when err is set
	err    error
	exp    time.Time
}

// NewClientDocuments checks o and builds the resolver.
func NewClientDocuments(o ClientDocumentsOptions) (*ClientDocuments, error) {
	if o.Timeout < 0 || o.MaxBytes < 0 || o.MinCache < 0 || o.MaxCache < 0 || o.NegativeCache < 0 ||
		o.MaxCacheEntries < 0 || o.MaxFetches < 0 {
		return nil, errors.New("facade: negative client document option")
	}
	d := &ClientDocuments{
		timeout: cmp.Or(o.Timeout, DefaultDocumentTimeout), maxBytes: cmp.Or(o.MaxBytes, DefaultDocumentMaxBytes),
		minCache: cmp.Or(o.MinCache, DefaultDocumentMinCache), maxCache: cmp.Or(o.MaxCache, DefaultDocumentMaxCache),
		negTTL: cmp.Or(o.NegativeCache, DefaultDocumentNegativeCache), maxEntries: cmp.Or(o.MaxCacheEntries, DefaultDocumentCacheEntries),
		now: o.Now, log: o.Logger, onFetch: o.OnFetch,
		sem:       make(chan struct{}, cmp.Or(o.MaxFetches, DefaultDocumentFetches)),
		httpHosts: make(map[string]bool),
		entries:   make(map[string]*list.Element),
	}
	if d.maxCache < d.minCache {
		return nil, errors.New("facade: MaxCache shorter than MinCache")
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.onFetch == nil {
		d.onFetch = func(error) {}
	}
	for _, h := range o.AllowHTTPHosts {
		d.httpHosts[strings.ToLower(h)] = true
	}
	for _, p := range o.AllowNetworks {
		if !p.IsValid() {
			return nil, errors.New("facade: invalid network in AllowNetworks")
		}
	}
	dialer := newSafeDialer(addressPolicy{allow: slices.Clone(o.AllowNetworks)}, o.Lookup, d.timeout)
	var tlsConfig *tls.Config
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	} else {
		tlsConfig = &tls.Config{}
	}
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	d.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would connect where the address policy never looked
			DialContext:            dialer.DialContext,
			TLSClientConfig:        tlsConfig,
			TLSHandshakeTimeout:    d.timeout,
			ResponseHeaderTimeout:  d.timeout,
			MaxResponseHeaderBytes: 16 << 10,
			DisableCompression:     true, // the size limit is the size on the wire
			MaxIdleConns:           16,
			IdleConnTimeout:        30 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		Timeout: d.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // answered as a refusal: see ClientDocuments
		},
	}
	return d, nil
}

// IsClientIDURL reports whether clientID is meant as a metadata document URL: it begins with
// https:// or http:// (case-insensitively). Such a client_id is never a registered one.
func IsClientIDURL(clientID string) bool {
	return hasPrefixFold(clientID, "https://") || hasPrefixFold(clientID, "http://")
}

// checkClientIDURL enforces the draft's rules for a client identifier URL (§3): https, a
// path, no dot segments (nor their percent-encoded forms), no fragment, no user information;
// a query is allowed. Beyond them: at most MaxClientIDLen bytes of visible ASCII in its plain
// form, so that "the document's client_id equals the URL" is a plain string comparison.
// http is allowed only for a host in httpHosts.
func (d *ClientDocuments) checkClientIDURL(s string) error {
	if len(s) > MaxClientIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformedClientID, MaxClientIDLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || strings.IndexByte("\\\"<>{}|^`#", c) >= 0 {
			return fmt.Errorf("%w: a character that is not plain visible ASCII, or a fragment", ErrMalformedClientID)
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: not an absolute URL", ErrMalformedClientID)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && d.httpHosts[strings.ToLower(u.Host)]:
	default:
		return fmt.Errorf("%w: a metadata document URL must be https", ErrMalformedClientID)
	}
	if u.User != nil {
		return fmt.Errorf("%w: a URL with user information", ErrMalformedClientID)
	}
	if u.String() != s {
		return fmt.Errorf("%w: a URL not in its plain form", ErrMalformedClientID)
	}
	if u.Path == "" || u.Path == "/" {
		return fmt.Errorf("%w: a metadata document URL needs a path", ErrMalformedClientID)
	}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil || dec == "." || dec == ".." {
			return fmt.Errorf("%w: a URL with a dot segment", ErrMalformedClientID)
		}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return fmt.Errorf("%w: an invalid port", ErrMalformedClientID)
		}
	}
	return nil
}

// Client returns the client described by the metadata document at clientID, from the cache or
// fetched now. Errors wrap ErrMalformedClientID, ErrInvalidClient or ErrClientUnavailable.
// The returned client is the caller's to keep.
func (d *ClientDocuments) Client(ctx context.Context, clientID string) (*RegisteredClient, error) {
	if err := d.checkClientIDURL(clientID); err != nil {
		return nil, err
	}
	if e, ok := d.cached(clientID); ok {
		if e.err != nil {
			return nil, e.err
		}
		return cloneClient(e.client), nil
	}
	ch := d.flight.DoChan(clientID, func() (any, error) {
		// Detached from the first caller: its cancellation must not fail the others.
		return d.fetchAndCache(context.WithoutCancel(ctx), clientID)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrClientUnavailable, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return cloneClient(res.Val.(*RegisteredClient)), nil
	}
}

// cached returns a copy of the live cache entry for u. Entries are never changed once
// stored, so the copy may be read without the lock.
func (d *ClientDocuments) cached(u string) (docEntry, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	el, ok := d.entries[u]
	if !ok {
		return docEntry{}, false
	}
	e := el.Value.(*docEntry)
	if !now.Before(e.exp) {
		d.lru.Remove(el)
		delete(d.entries, u)
		return docEntry{}, false
	}
	d.lru.MoveToFront(el)
	return *e, true
}

func (d *ClientDocuments) store(u string, c *RegisteredClient, err error, ttl time.Duration) {
	exp := d.now().Add(ttl)
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.entries[u]; ok {
		d.lru.Remove(el)
		delete(d.entries, u)
	}
	for len(d.entries) >= d.maxEntries {
		back := d.lru.Back()
		d.lru.Remove(back)
		delete(d.entries, back.Value.(*docEntry).url)
	}
	d.entries[u] = d.lru.PushFront(&docEntry{url: u, client: c, err: err, exp: exp})
}

// fetchAndCache fetches u unless MaxFetches are running, and caches the outcome.
func (d *ClientDocuments) fetchAndCache(ctx context.Context, u string) (*RegisteredClient, error) {
	select {
	case d.sem <- struct{}{}:
		defer func() { <-d.sem }()
	default:
		return nil, fmt.Errorf("%w: too many metadata documents being fetched", ErrClientUnavailable)
	}
	c, ttl, err := d.fetch(ctx, u)
	d.onFetch(err)
	if err != nil {
		d.log.LogAttrs(ctx, slog.LevelWarn, "facade client metadata document refused",
			slog.String("event", "client_document_failed"), slog.String("client_id", u), slog.String("reason", err.Error()))
		d.store(u, nil, err, d.negTTL)
		return nil, err
	}
	d.store(u, c, nil, ttl)
	return c, nil
}

// fetch gets and checks the document at u, and says how long it may be used.
func (d *ClientDocuments) fetch(ctx context.Context, u string) (*RegisteredClient, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	// The URL comes from a client's request on purpose (the authorize endpoint's client_id):
	// checkClientIDURL checked it, and d.client's dialer checks every address it connects to.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil) //nolint:gosec // G704: see above
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformedClientID, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req) //nolint:gosec // G704: see above
	if err != nil {
		if errors.Is(err, ErrAddressNotAllowed) {
			return nil, 0, fmt.Errorf("%w: the document's host is not a public address", ErrInvalidClient)
		}
		// url.Error names the URL, which is the client_id: not a secret.
		return nil, 0, fmt.Errorf("%w: fetching the metadata document: %w", ErrClientUnavailable, err)
	}
	defer resp.Body.Close()
	if pastDeadline(ctx) {
		// The transport can hand over a response that raced its own cancellation: the
		// server answered because we hung up. Nothing that arrives past the deadline counts.
		return nil, 0, fmt.Errorf("%w: fetching the metadata document: %w", ErrClientUnavailable, context.DeadlineExceeded)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, 0, fmt.Errorf("%w: the metadata document URL redirects (HTTP %d), which is not followed", ErrInvalidClient, resp.StatusCode)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, 0, fmt.Errorf("%w: the metadata document's server answered HTTP %d", ErrClientUnavailable, resp.StatusCode)
	default:
		return nil, 0, fmt.Errorf("%w: the metadata document's server answered HTTP %d", ErrInvalidClient, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, 0, fmt.Errorf("%w: the metadata document is not application/json", ErrInvalidClient)
	}
	if resp.ContentLength > d.maxBytes {
		return nil, 0, fmt.Errorf("%w: the metadata document is larger than %d bytes", ErrInvalidClient, d.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, d.maxBytes+1))
	if err == nil && pastDeadline(ctx) {
		// A body cut short by the deadline can end without an error from the reader (the
		// transport racing the cancellation): past the deadline, nothing read counts.
		err = context.DeadlineExceeded
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: reading the metadata document: %w", ErrClientUnavailable, err)
	}
	if int64(len(body)) > d.maxBytes {
		return nil, 0, fmt.Errorf("%w: the metadata document is larger than %d bytes", ErrInvalidClient, d.maxBytes)
	}
	c, docID, err := parseClientMetadata(body, true)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: the metadata document: %w", ErrInvalidClient, err)
	}
	if docID != u {
		return nil, 0, fmt.Errorf("%w: the metadata document's client_id is not its URL", ErrInvalidClient)
	}
	c.ClientID = u
	c.MetadataDocument = true
	return c, cacheLifetime(resp.Header.Values("Cache-Control"), d.minCache, d.maxCache), nil
}

// cacheLifetime is how long a response may be used by its Cache-Control: max-age clamped to
// [lo, hi]; lo for no-store, no-cache, or no max-age. The first max-age counts (RFC 9111
// §4.2.1); one that is not a number of seconds is ignored.
func cacheLifetime(values []string, lo, hi time.Duration) time.Duration {
	var maxAge time.Duration
	found := false
	for _, v := range values {
		for dir := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return lo
			case "max-age":
				if found {
					continue
				}
				arg = strings.Trim(strings.TrimSpace(arg), `"`)
				if arg == "" || strings.Trim(arg, "0123456789") != "" {
					continue
				}
				found = true
				if len(arg) > 9 { // over 31 years: as long as allowed
					maxAge = hi
					continue
				}
				n, _ := strconv.Atoi(arg) // nine digits at most
				maxAge = time.Duration(n) * time.Second
			}
		}
	}
	if !found {
		return lo
	}
	return min(max(maxAge, lo), hi)
}

// cloneClient copies c, slices included.
func cloneClient(c *RegisteredClient) *RegisteredClient {
	cc := *c
	cc.RedirectURIs = slices.Clone(c.RedirectURIs)
	cc.GrantTypes = slices.Clone(c.GrantTypes)
	cc.ResponseTypes = slices.Clone(c.ResponseTypes)
	return &cc
}

// pastDeadline reports whether ctx is done or its deadline has passed. The second half matters:
// http.Client's own timer can cancel a request a moment before ctx's timer has marked ctx done.
func pastDeadline(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
