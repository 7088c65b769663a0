// Package httpauthz serves the decision pipeline over plain HTTP, for
// proxies that ask an authorization service with a subrequest instead of
// Envoy's gRPC Check: Envoy's http_service mode, nginx auth_request,
// Traefik ForwardAuth and Caddy forward_auth. Each has its own path, so
// that how the original request is described, and which protected resource
// it is decided for, are fixed by the proxy's configuration and never by
// headers a client could add:
//
//	/authz/nginx/<resource>       nginx auth_request: X-Original-Method and X-Original-URI, set by
//	                              proxy_set_header; Host and the other headers as forwarded
//	/authz/traefik/<resource>     Traefik ForwardAuth, Caddy forward_auth: X-Forwarded-Method,
//	                              -Proto, -Host and -Uri
//	/authz/nginx-preflight/<resource>
//	                              not a subrequest: nginx proxies CORS preflights here (proxy_pass),
//	                              described as for /authz/nginx, and the answer goes to the browser
//	/authz/envoy-resource/<resource>/<original path>
//	                              Envoy ext_authz http_service with path_prefix
//	                              "/authz/envoy-resource/<resource>": the original method, path,
//	                              query, Host and headers (and body, with with_request_body)
//
// Without the resource (/authz/nginx, /authz/traefik, /authz/envoy/<original
// path>) the resource is chosen by host and path as for a Check without
// context_extensions — from the Host the client wrote, which is safe only
// when the proxy routes by that same host (see config.Warnings).
//
// Allowed: 200 with the identity headers (x-extauthz-subject, -client-id,
// -scopes by default) for the proxy to copy onto the upstream request, and,
// when the request had a Cookie header, "Cookie" with the value the
// upstream may see (the login cookie removed; empty when nothing is
// left), for the proxy to copy over the request's. Denied: the status,
// WWW-Authenticate, Retry-After and JSON body of the denial table. Every
// proxy reads a 2xx answer as "allow", so an answer the pipeline would give
// directly with a 2xx status (the metadata document, a CORS preflight
// answered by the gateway) is a 403 here: route the metadata paths to the
// HTTP listener itself, and send preflights to /authz/nginx-preflight (or see
// the resource's preflight setting). A denial to an allowed Origin carries
// the CORS headers (Access-Control-Allow-Origin, -Expose-Headers, Vary),
// which a proxy must copy onto its answer as it does WWW-Authenticate.
//
// nginx's auth_request accepts only 2xx, 401 and 403 from the subrequest
// (anything else becomes a 500) and discards the subrequest's body, so
// /authz/nginx answers every denial as 401 (a real 401) or 403 (anything
// else) and carries the answer in headers for the configuration's
// error_page locations to rebuild: X-Extauthz-Status (the real status) and
// X-Extauthz-Body (the JSON body, escaped to printable ASCII), beside the
// usual WWW-Authenticate, Location, Retry-After, Cache-Control and CORS
// headers. Traefik and Caddy relay any status with its body: their
// endpoint answers with the real status.
package httpauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/extauthz/extauthz/pkg/authz"
)

// Prefix is where the endpoints live on the HTTP listener.
const Prefix = "/authz/"

// Decider decides a request; *authz.Engine implements it.
type Decider interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

// Options configures the handler.
type Options struct {
	// MaxBodyBytes bounds a forwarded body (Envoy with_request_body): a
	// longer one is read no further and decided without its tail, which
	// the MCP rules refuse (default 65536).
	MaxBodyBytes int
	// Logger receives denials at debug level and panics (nil: discard).
	Logger *slog.Logger
}

// Handler answers authorization subrequests at Prefix.
type Handler struct {
	d   Decider
	o   Options
	log *slog.Logger
}

// New builds the handler.
func New(d Decider, o Options) *Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{d: d, o: o, log: o.Logger}
}

// Headers that describe the subrequest itself, never the original request.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true, "content-length": true,
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := endpointMode(r)
	// nginx's denials are relayed through headers (see the package comment).
	nginx := mode == "nginx"
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("authorization subrequest panicked; denying", "panic", fmt.Sprint(p))
			d := authz.Refusal(authz.ErrInternal)
			writeDecision(w, &d, "", false, nginx)
		}
	}()
	req, err := h.original(r)
	if err != nil {
		// The proxy is misconfigured: say so, and deny.
		h.log.Warn("authorization subrequest does not describe the original request", "path", r.URL.Path, "err", err)
		writeDecision(w, &authz.Decision{
			Status:      http.StatusBadRequest,
			Reason:      authz.ReasonInvalidRequest,
			ContentType: "application/json",
			Body:        errorBody("invalid_request", err.Error()),
		}, "", false, nginx)
		return
	}
	d := h.d.Check(r.Context(), req)
	if !d.Allow && h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.Debug("denied", "status", d.Status, "reason", string(d.Reason), "resource", d.Resource, "err", d.Err)
	}
	if mode == "nginx-preflight" {
		writeAnswer(w, &d)
		return
	}
	cookie, hasCookie := upstreamCookie(req, &d)
	writeDecision(w, &d, cookie, hasCookie, nginx)
}

// endpointMode is the proxy convention r came to: the first path segment
// after Prefix ("nginx", "nginx-preflight", "traefik", "envoy", ...).
func endpointMode(r *http.Request) string {
	mode, _, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), Prefix), "/")
	return mode
}

// original reconstructs the request the proxy is asking about.
func (h *Handler) original(r *http.Request) (*authz.Request, error) {
	mode, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), Prefix), "/")
	req := &authz.Request{Headers: make(map[string]string, len(r.Header))}
	var skip map[string]bool
	switch mode {
	case "envoy", "envoy-resource":
		req.Method = r.Method
		req.Host = r.Host
		req.Scheme = "http"
		if r.TLS != nil {
			req.Scheme = "https"
		}
		// The original path follows the prefix, escaped as sent.
		req.Path = "/" + rest
		if mode == "envoy-resource" {
			name, path, _ := strings.Cut(rest, "/")
			req.ContextExtensions = resourceNamed(name)
			req.Path = "/" + path
		}
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			req.Path += "?" + r.URL.RawQuery
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.o.MaxBodyBytes)+1))
		if err != nil {
			return nil, fmt.Errorf("reading the body: %v", err)
		}
		if len(body) > 0 {
			req.Body = body
		}
	case "nginx", "nginx-preflight":
		if rest != "" || strings.HasSuffix(r.URL.EscapedPath(), "/") {
			req.ContextExtensions = resourceNamed(rest)
		}
		req.Method = r.Header.Get("X-Original-Method")
		req.Path = r.Header.Get("X-Original-URI")
		req.Host = r.Host
		req.Scheme = "http"
		if p := r.Header.Get("X-Original-Proto"); p != "" {
			req.Scheme = p
		}
		if req.Method == "" || req.Path == "" {
			return nil, fmt.Errorf("nginx must set X-Original-Method and X-Original-URI (proxy_set_header)")
		}
		// The subrequest has no body of its own; whether the original
		// has one (a CORS preflight must not) comes in these, set by
		// proxy_set_header from $content_length and $http_transfer_encoding
		// (nginx sends no header for an empty value).
		if v := r.Header.Get("X-Original-Content-Length"); v != "" {
			req.Headers["content-length"] = v
		}
		if v := r.Header.Get("X-Original-Transfer-Encoding"); v != "" {
			req.Headers["transfer-encoding"] = v
		}
		skip = map[string]bool{"x-original-method": true, "x-original-uri": true, "x-original-proto": true,
			"x-original-content-length": true, "x-original-transfer-encoding": true}
	case "traefik":
		if rest != "" || strings.HasSuffix(r.URL.EscapedPath(), "/") {
			req.ContextExtensions = resourceNamed(rest)
		}
		req.Method = r.Header.Get("X-Forwarded-Method")
		req.Scheme = r.Header.Get("X-Forwarded-Proto")
		req.Host = r.Header.Get("X-Forwarded-Host")
		req.Path = r.Header.Get("X-Forwarded-Uri")
		if req.Method == "" || req.Host == "" || req.Path == "" {
			return nil, fmt.Errorf("traefik must send X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri")
		}
		skip = map[string]bool{"x-forwarded-method": true, "x-forwarded-proto": true, "x-forwarded-host": true, "x-forwarded-uri": true}
	default:
		return nil, fmt.Errorf("unknown endpoint %s (use %snginx[/<resource>], %straefik[/<resource>], %senvoy/ or %senvoy-resource/<resource>/)", r.URL.Path, Prefix, Prefix, Prefix, Prefix)
	}
	if !strings.HasPrefix(req.Path, "/") {
		// An absolute-form or garbage URI: decide on the path alone.
		u, err := url.Parse(req.Path)
		if err != nil || u.Path == "" {
			return nil, fmt.Errorf("the original URI %q is not a path", req.Path)
		}
		req.Path = u.EscapedPath()
		if u.RawQuery != "" {
			req.Path += "?" + u.RawQuery
		}
	}
	for name, values := range r.Header {
		k := strings.ToLower(name)
		if hopByHop[k] || skip[k] {
			continue
		}
		// Repeated headers are merged with "," as Envoy's CheckRequest
		// does, so two Authorization headers stay detectable.
		req.Headers[k] = strings.Join(values, ",")
		if strings.IndexByte(k, '_') >= 0 {
			req.Underscored = append(req.Underscored, k)
		}
	}
	req.UnderscoredKnown = true
	return req, nil
}

// resourceNamed is the route setting that names a resource, from the
// endpoint's path segment as the proxy's configuration wrote it. A segment
// that cannot be a resource name (empty, escaped, other characters) names
// no configured resource, so the Check refuses it (403) rather than
// falling back to the Host.
func resourceNamed(segment string) map[string]string {
	return map[string]string{"resource": segment}
}

func errorBody(code, description string) []byte {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	return b
}

// Headers of an answer to nginx that carry what auth_request would lose.
const (
	// StatusHeader is the status the client must get.
	StatusHeader = "X-Extauthz-Status"
	// BodyHeader is the JSON body the client must get, in printable ASCII.
	BodyHeader = "X-Extauthz-Body"
)

// MaxBodyHeader bounds BodyHeader: nginx reads the subrequest's answer
// headers into one buffer (proxy_buffer_size, 8k in the shipped
// nginx.conf) and refuses a longer one. A longer body is replaced by a
// short one for the same status.
const MaxBodyHeader = 4096

// writeDecision answers the subrequest. cookie is the request's Cookie
// header as the upstream may see it, ok false when it had none. nginx
// says whether the answer goes to nginx (see the package comment).
func writeDecision(w http.ResponseWriter, d *authz.Decision, cookie string, hasCookie, nginx bool) {
	hdr := w.Header()
	if d.Allow {
		for _, u := range d.Upstream {
			if u.Name != "cookie" {
				hdr.Set(u.Name, u.Value)
			}
		}
		for _, u := range d.Respond {
			// For the client's response (a new DPoP-Nonce): nginx adds
			// it with auth_request_set and add_header.
			hdr.Set(u.Name, u.Value)
		}
		if hasCookie {
			// Always sent when the request had one, so that a proxy copying
			// it over the request's Cookie never keeps the original.
			hdr.Set("Cookie", cookie)
		}
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	if d.Status < 300 {
		// A direct answer (the metadata document, a preflight answered by
		// the gateway) cannot be sent through a subrequest: every proxy
		// reads 2xx as "allow" and would pass the request on.
		d = &authz.Decision{
			Status:      http.StatusForbidden,
			Reason:      d.Reason,
			ContentType: "application/json",
			Body: errorBody("forbidden", "this request is answered by the gateway itself, not through an authorization subrequest: "+
				"route /.well-known/oauth-protected-resource to the gateway's HTTP listener, and set the resource's preflight: forward or answer CORS preflights in the proxy"),
		}
	}
	for _, x := range d.ResponseHeaders() {
		hdr.Set(x.Name, x.Value)
	}
	status := d.Status
	if nginx {
		hdr.Set(StatusHeader, strconv.Itoa(d.Status))
		if len(d.Body) > 0 {
			hdr.Set(BodyHeader, headerBody(d.Body, d.Status))
		}
		if status != http.StatusUnauthorized {
			status = http.StatusForbidden
		}
	}
	hdr.Set("Content-Length", strconv.Itoa(len(d.Body)))
	w.WriteHeader(status)
	_, _ = w.Write(d.Body) //nolint:gosec // the gateway's own JSON error, with its content type
}

// writeAnswer serves a decision as the answer to the client, for
// /authz/nginx-preflight: nginx proxies CORS preflights there (proxy_pass,
// not auth_request), so the gateway's 204 with its CORS headers reaches the
// browser, which an authorization subrequest cannot carry (nginx reads any
// 2xx as "allow"). A denial is relayed as it is. A request the gateway
// would let through is no preflight it answers: 403, never a 2xx that
// would read as "allow" to a proxy wired to this path by mistake.
func writeAnswer(w http.ResponseWriter, d *authz.Decision) {
	if d.Allow || (d.Status < 300 && d.Reason != authz.ReasonPreflight) {
		d = &authz.Decision{
			Status:      http.StatusForbidden,
			Reason:      d.Reason,
			ContentType: "application/json",
			Body: errorBody("forbidden", "only CORS preflights that the gateway answers are served here: "+
				"route OPTIONS requests with Access-Control-Request-Method to this endpoint, and nothing else"),
		}
	}
	hdr := w.Header()
	for _, x := range d.ResponseHeaders() {
		hdr.Set(x.Name, x.Value)
	}
	if d.Status != http.StatusNoContent {
		hdr.Set("Content-Length", strconv.Itoa(len(d.Body)))
	}
	w.WriteHeader(d.Status)
	_, _ = w.Write(d.Body) //nolint:gosec // the gateway's own JSON error, with its content type
}

// upstreamCookie is the Cookie header the upstream may see after d: as
// sent, or as the decision rewrote or removed it.
func upstreamCookie(req *authz.Request, d *authz.Decision) (string, bool) {
	cookie, ok := req.Headers["cookie"]
	if !ok {
		return "", false
	}
	for _, u := range d.Upstream {
		if u.Name == "cookie" {
			return u.Value, true
		}
	}
	for _, name := range d.Remove {
		if name == "cookie" {
			return "", true
		}
	}
	return cookie, true
}

// headerBody is a JSON body as a header value: compact, every character
// outside printable ASCII written as a JSON \u escape (valid only inside
// strings, where valid JSON holds all of them), so that no CR, LF or
// non-ASCII byte reaches the header. A body that is not valid JSON, or too
// long, becomes a short one for its status: never a raw byte in a header.
func headerBody(body []byte, status int) string {
	var c bytes.Buffer
	if json.Compact(&c, body) != nil {
		return string(errorBody("server_error", "the denial's body is not JSON"))
	}
	var b strings.Builder
	for s := c.Bytes(); len(s) > 0; {
		r, n := utf8.DecodeRune(s)
		s = s[n:]
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			// Compact JSON has no raw control character outside a string,
			// and json.Compact refused one inside; DEL and non-ASCII are
			// inside strings (invalid UTF-8 becomes U+FFFD).
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	if b.Len() > MaxBodyHeader {
		return string(errorBody(strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_"),
			"the denial's body is too long to relay through nginx; the WWW-Authenticate header says why"))
	}
	return b.String()
}
