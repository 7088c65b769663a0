// Package envoyfront is a test stand-in for Envoy's ext_authz HTTP filter in
// front of an MCP server, not a product: no Envoy binary can run on the
// development and CI machines, so the end-to-end tests drive the gateway's
// gRPC Check through this small proxy instead.
//
// For each request it does what the repository's envoy/envoy.yaml asks Envoy
// to do: refuse header names with '_' and paths that are not in normal form
// (Envoy would normalise them; refusing is stricter and keeps routing and
// decision on one spelling), pick the route by path prefix, buffer the body up
// to MaxBody (with_request_body without partial messages: a larger body is a
// 413), send the CheckRequest Envoy sends (built by check.EnvoyRequest, as the
// check command and the tests build it) with the route's context_extensions,
// and apply the answer: OK sets, appends and removes request headers and query
// parameters (only headers the mutation rule allows, else 500, as
// disallow_is_error does) and proxies to the upstream with streaming (SSE);
// Denied sends its status, headers and body to the client; a failed Check is
// a 503 (status_on_error, failure_mode_allow false).
package envoyfront

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/pkg/check"
)

// Route is one route of the front.
type Route struct {
	// Prefix matches the path itself or the path followed by '/' (Envoy's
	// path_separated_prefix); the longest matching prefix wins.
	Prefix string
	// Resource, when set, is sent as context_extensions {resource: …}.
	Resource string
	// Upstream is where an allowed request goes (scheme and host; a path is
	// ignored). Nil: an allowed request gets 404 (a route with no cluster).
	Upstream *url.URL
	// PrefixRewrite replaces Prefix in the upstream path (Envoy's
	// prefix_rewrite); empty keeps the path.
	PrefixRewrite string
}

// Options configures a Front.
type Options struct {
	// Check is the gateway's gRPC listener (host:port).
	Check string
	// Routes; a request no route matches gets 404 without a Check (Envoy's
	// "no route").
	Routes []Route
	// MaxBody is with_request_body.max_request_bytes (default 65536).
	MaxBody int
	// RawHeaders sends header_map (encode_raw_headers: true).
	RawHeaders bool
	// Timeout of one Check (default 5 s: the race detector slows the
	// gateway; envoy.yaml says 1 s).
	Timeout time.Duration
	// Mutable is the decoder_header_mutation_rules allow_expression: a
	// header the answer sets or removes must match it in full, else the
	// request fails with 500. Nil allows every mutation.
	Mutable *regexp.Regexp
	// ErrorLog receives proxy errors (default: discarded).
	ErrorLog *log.Logger
}

// Front is a running front proxy.
type Front struct {
	URL string // http://127.0.0.1:PORT

	opts   Options
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
	srv    *http.Server
	proxy  *httputil.ReverseProxy
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(opts Options) (*Front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return Serve(ln, opts)
}

// Serve serves on ln (for a port chosen before the gateway's configuration
// is written) until Close.
func Serve(ln net.Listener, opts Options) (*Front, error) {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 65536
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.ErrorLog == nil {
		opts.ErrorLog = log.New(io.Discard, "", 0)
	}
	conn, err := grpc.NewClient(opts.Check, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	f := &Front{URL: "http://" + ln.Addr().String(), opts: opts, conn: conn, client: authv3.NewAuthorizationClient(conn)}
	f.proxy = &httputil.ReverseProxy{
		// The route chose the upstream and the path before; the Host header
		// stays the client's, as Envoy keeps :authority.
		Rewrite:       func(*httputil.ProxyRequest) {},
		FlushInterval: -1, // every write at once: SSE
		ErrorLog:      opts.ErrorLog,
	}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second, ErrorLog: opts.ErrorLog}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// Close stops the listener, open connections and the gRPC client.
func (f *Front) Close() error {
	return errors.Join(f.srv.Close(), f.conn.Close())
}

func (f *Front) route(p string) *Route {
	var best *Route
	for i := range f.opts.Routes {
		r := &f.opts.Routes[i]
		if (p == r.Prefix || strings.HasPrefix(p, strings.TrimSuffix(r.Prefix, "/")+"/")) && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	return best
}

// normal reports whether the path is in the form Envoy's normalize_path,
// merge_slashes and path_with_escaped_slashes_action: REJECT_REQUEST leave
// unchanged.
func normal(u *url.URL) bool {
	esc := strings.ToLower(u.EscapedPath())
	if strings.Contains(esc, "%2f") || strings.Contains(esc, "%5c") || strings.Contains(u.Path, "\\") {
		return false
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && clean != "/" {
		clean += "/"
	}
	return strings.HasPrefix(u.Path, "/") && clean == u.Path
}

// ServeHTTP handles one request as Envoy's filter chain would: check, then
// proxy or deny.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for name := range r.Header {
		if strings.Contains(name, "_") { // headers_with_underscores_action: REJECT_REQUEST
			http.Error(w, "header name with underscore", http.StatusBadRequest)
			return
		}
	}
	if !normal(r.URL) {
		http.Error(w, "path not in normal form", http.StatusBadRequest)
		return
	}
	rt := f.route(r.URL.Path)
	if rt == nil {
		http.NotFound(w, r)
		return
	}

	// with_request_body, allow_partial_message false.
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, int64(f.opts.MaxBody)+1))
		if err != nil {
			http.Error(w, "reading the body", http.StatusBadRequest)
			return
		}
		if len(b) > f.opts.MaxBody {
			http.Error(w, "Payload Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}

	req, err := f.checkRequest(r, rt, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.opts.Timeout)
	resp, err := f.client.Check(ctx, req)
	cancel()
	if err != nil {
		f.opts.ErrorLog.Printf("Check: %v", err)
		w.WriteHeader(http.StatusServiceUnavailable) // status_on_error
		return
	}

	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		denied := resp.GetDeniedResponse()
		for _, h := range denied.GetHeaders() {
			apply(w.Header(), h)
		}
		status := int(denied.GetStatus().GetCode())
		if status == 0 {
			status = http.StatusForbidden // Envoy's default for a denial without a status
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, denied.GetBody())
		return
	}

	ok := resp.GetOkResponse()
	out := r.Clone(r.Context())
	out.Body = r.Body
	for _, name := range ok.GetHeadersToRemove() {
		if !f.mutable(name) {
			http.Error(w, "header mutation not allowed: "+name, http.StatusInternalServerError)
			return
		}
		out.Header.Del(name)
	}
	for _, h := range ok.GetHeaders() {
		if !f.mutable(h.GetHeader().GetKey()) {
			http.Error(w, "header mutation not allowed: "+h.GetHeader().GetKey(), http.StatusInternalServerError)
			return
		}
		apply(out.Header, h)
	}
	if len(ok.GetQueryParametersToSet()) > 0 || len(ok.GetQueryParametersToRemove()) > 0 {
		q := out.URL.Query()
		for _, k := range ok.GetQueryParametersToRemove() {
			q.Del(k)
		}
		for _, p := range ok.GetQueryParametersToSet() {
			q.Set(p.GetKey(), p.GetValue())
		}
		out.URL.RawQuery = q.Encode()
	}
	for _, h := range ok.GetResponseHeadersToAdd() {
		apply(w.Header(), h)
	}
	if rt.Upstream == nil {
		http.NotFound(w, r)
		return
	}
	out.URL.Scheme, out.URL.Host = rt.Upstream.Scheme, rt.Upstream.Host
	if rt.PrefixRewrite != "" {
		out.URL.Path = rt.PrefixRewrite + strings.TrimPrefix(out.URL.Path, rt.Prefix)
		out.URL.RawPath = ""
	}
	out.RequestURI = ""
	f.proxy.ServeHTTP(w, out)
}

// checkRequest is the CheckRequest Envoy sends for r on route rt.
func (f *Front) checkRequest(r *http.Request, rt *Route, body []byte) (*authv3.CheckRequest, error) {
	var headers [][2]string
	for name, values := range r.Header {
		for _, v := range values {
			headers = append(headers, [2]string{strings.ToLower(name), v})
		}
	}
	if len(r.TransferEncoding) > 0 {
		headers = append(headers, [2]string{"transfer-encoding", strings.Join(r.TransferEncoding, ",")})
	}
	// Envoy says whether the body it sends is all of it.
	headers = append(headers, [2]string{"x-envoy-auth-partial-body", "false"})
	er := check.EnvoyRequest{
		Method:        r.Method,
		URL:           "http://" + r.Host + r.URL.RequestURI(),
		Headers:       headers,
		RawHeaders:    f.opts.RawHeaders,
		Body:          body,
		SourceAddress: r.RemoteAddr,
	}
	if rt.Resource != "" {
		er.ContextExtensions = map[string]string{"resource": rt.Resource}
	}
	req, err := er.Proto()
	if err != nil {
		return nil, fmt.Errorf("describing the request: %w", err)
	}
	return req, nil
}

func (f *Front) mutable(name string) bool {
	if f.opts.Mutable == nil {
		return true
	}
	n := strings.ToLower(name)
	loc := f.opts.Mutable.FindStringIndex(n)
	return loc != nil && loc[0] == 0 && loc[1] == len(n)
}

// apply applies one header option as Envoy does: the deprecated append
// flag when set, else append_action.
func apply(h http.Header, o *corev3.HeaderValueOption) {
	k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
	if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
		v = string(raw)
	}
	if v == "" && !o.GetKeepEmptyValue() {
		return // keep_empty_value false: the header is dropped, not added
	}
	action := o.GetAppendAction()
	if legacy := o.GetAppend(); legacy != nil { //nolint:staticcheck // deprecated, and still honoured by Envoy
		action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if legacy.GetValue() {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
	}
	switch action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.Add(k, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if len(h.Values(k)) == 0 {
			h.Add(k, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.Set(k, v)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if len(h.Values(k)) > 0 {
			h.Set(k, v)
		}
	}
}
