package envoyfront

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// fakeAuthz answers by the request's path, and keeps every CheckRequest.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	reqs []*authv3.CheckRequest
}

func set(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func (f *fakeAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	ok := func(o *authv3.OkHttpResponse) *authv3.CheckResponse {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: o}}
	}
	switch p := req.GetAttributes().GetRequest().GetHttp().GetPath(); {
	case strings.HasPrefix(p, "/mcp/deny"):
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(code.Code_UNAUTHENTICATED)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Headers: []*corev3.HeaderValueOption{set("www-authenticate", `Bearer resource_metadata="x"`), set("cache-control", "no-store")},
				Body:    `{"error":"unauthorized"}`,
			}},
		}, nil
	case strings.HasPrefix(p, "/mcp/mutate"):
		return ok(&authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{set("x-other", "1")}}), nil
	case strings.HasPrefix(p, "/mcp/broken"):
		return nil, grpcstatus.Error(grpccodes.Internal, "broken")
	default:
		return ok(&authv3.OkHttpResponse{
			Headers:                 []*corev3.HeaderValueOption{set("x-extauthz-subject", "alice")},
			HeadersToRemove:         []string{"authorization"},
			QueryParametersToSet:    []*corev3.QueryParameter{{Key: "added", Value: "1"}},
			QueryParametersToRemove: []string{"gone"},
		}), nil
	}
}

func (f *fakeAuthz) last() *authv3.AttributeContext_HttpRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil
	}
	return f.reqs[len(f.reqs)-1].GetAttributes().GetRequest().GetHttp()
}

func (f *fakeAuthz) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func TestFront(t *testing.T) {
	authz := &fakeAuthz{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, authz)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	var upstreamSaw *http.Request
	var upstreamMu sync.Mutex
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamMu.Lock()
		upstreamSaw = r.Clone(context.Background())
		upstreamMu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: hello\n\n")
	}))
	t.Cleanup(upstream.Close)
	up, _ := url.Parse(upstream.URL)

	f, err := Start(Options{
		Check:   ln.Addr().String(),
		Routes:  []Route{{Prefix: "/mcp", Resource: "mcp", Upstream: up, PrefixRewrite: "/inner"}},
		MaxBody: 64,
		Mutable: regexp.MustCompile(`x-extauthz-subject|authorization`),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })

	do := func(method, path, body string, h map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, f.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// Allowed: the Check describes the request as Envoy does; the answer is applied.
	resp, body := do("POST", "/mcp?gone=1&keep=2", `{"jsonrpc":"2.0"}`, map[string]string{"Authorization": "Bearer t", "Mcp-Method": "tools/list", "X-Extauthz-Subject": "mallory"})
	if resp.StatusCode != 200 || body != "data: hello\n\n" {
		t.Fatalf("allowed request: %d %q", resp.StatusCode, body)
	}
	h := authz.last()
	if h.GetMethod() != "POST" || h.GetPath() != "/mcp?gone=1&keep=2" || h.GetHost() != strings.TrimPrefix(f.URL, "http://") || h.GetScheme() != "http" ||
		h.GetBody() != `{"jsonrpc":"2.0"}` || h.GetHeaders()["authorization"] != "Bearer t" || h.GetHeaders()["mcp-method"] != "tools/list" ||
		h.GetHeaders()[":authority"] != h.GetHost() || h.GetHeaders()["x-envoy-auth-partial-body"] != "false" {
		t.Errorf("CheckRequest http = %v", h)
	}
	authz.mu.Lock()
	if ce := authz.reqs[0].GetAttributes().GetContextExtensions(); ce["resource"] != "mcp" {
		t.Errorf("context_extensions = %v", ce)
	}
	authz.mu.Unlock()
	upstreamMu.Lock()
	if upstreamSaw.URL.Path != "/inner" || upstreamSaw.URL.Query().Get("gone") != "" || upstreamSaw.URL.Query().Get("keep") != "2" ||
		upstreamSaw.URL.Query().Get("added") != "1" || upstreamSaw.Header.Get("Authorization") != "" ||
		strings.Join(upstreamSaw.Header.Values("X-Extauthz-Subject"), ",") != "alice" || upstreamSaw.Host != strings.TrimPrefix(f.URL, "http://") {
		t.Errorf("upstream received %s %s Host %s headers %v", upstreamSaw.Method, upstreamSaw.URL, upstreamSaw.Host, upstreamSaw.Header)
	}
	upstreamMu.Unlock()

	// Denied: the client gets the denial's status, headers and body.
	resp, body = do("GET", "/mcp/deny", "", nil)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer resource_metadata="x"` || resp.Header.Get("Cache-Control") != "no-store" || body != `{"error":"unauthorized"}` {
		t.Errorf("denied: %d %v %q", resp.StatusCode, resp.Header, body)
	}

	// Failures never let the request through.
	for _, c := range []struct {
		what, method, path, body string
		h                        map[string]string
		status                   int
		checked                  bool
	}{
		{"a mutation the rule does not allow", "GET", "/mcp/mutate", "", nil, 500, true},
		{"the Check fails", "GET", "/mcp/broken", "", nil, 503, true},
		{"a body over MaxBody", "POST", "/mcp", strings.Repeat("x", 65), nil, 413, false},
		{"a dot segment", "GET", "/x/../mcp", "", nil, 400, false},
		{"an escaped slash", "GET", "/mcp%2Fx", "", nil, 400, false},
		{"an underscore header", "GET", "/mcp", "", map[string]string{"X_Extauthz_Subject": "mallory"}, 400, false},
		{"no route", "GET", "/other", "", nil, 404, false},
	} {
		before := authz.count()
		upstreamMu.Lock()
		upstreamSaw = nil
		upstreamMu.Unlock()
		resp, body := do(c.method, c.path, c.body, c.h)
		upstreamMu.Lock()
		reached := upstreamSaw != nil
		upstreamMu.Unlock()
		if resp.StatusCode != c.status || reached || (authz.count() > before) != c.checked {
			t.Errorf("%s: %d %q, upstream reached %t, checked %t; want %d, not reached, checked %t", c.what, resp.StatusCode, body, reached, authz.count() > before, c.status, c.checked)
		}
	}
}
