package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// resourceURI is the protected resource every scenario configures; the
// requests go to it exactly as in pkg/check's realisticRequest.
const (
	resourceURI   = "https://mcp.example.com/mcp"
	requiredScope = "mcp:tools"
)

// issuer is one of the tool's development issuers, served over HTTP on a
// loopback port for as long as the harness runs.
type issuer struct {
	dev   *devissuer.Issuer
	alg   string
	close func()
}

func (i *issuer) Issuer() string                         { return i.dev.Issuer() }
func (i *issuer) JWKSURL() string                        { return i.dev.JWKSURL() }
func (i *issuer) ActiveKID() string                      { return i.dev.ActiveKID() }
func (i *issuer) Mint(t devissuer.Token) (string, error) { return i.dev.Mint(t) }

// startIssuer serves a new issuer on a loopback httptest server.
func startIssuer(alg string) (*issuer, error) {
	ts := httptest.NewUnstartedServer(nil)
	iss, err := devissuer.New("http://"+ts.Listener.Addr().String(), alg, nil)
	if err != nil {
		ts.Close()
		return nil, err
	}
	iss.DefaultAudience = resourceURI
	ts.Config.Handler = iss.Handler()
	ts.Start()
	return &issuer{dev: iss, alg: alg, close: ts.Close}, nil
}

// serveIssuerAt serves a new RS256 issuer on a fixed loopback address, for
// another server to be configured with (--addr).
func serveIssuerAt(addr string) (*issuer, error) {
	if err := requireLoopback(addr); err != nil {
		return nil, fmt.Errorf("--issuer-addr: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--issuer-addr: %w", err)
	}
	iss, err := devissuer.New("http://"+ln.Addr().String(), "RS256", nil)
	if err != nil {
		ln.Close()
		return nil, err
	}
	iss.DefaultAudience = resourceURI
	srv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &issuer{dev: iss, alg: "RS256", close: func() { _ = srv.Close() }}, nil
}

// mintToken mints a token with the claims of pkg/check's realisticRequest:
// an RFC 9068 access token of typical size (about 950 bytes with RS256 and
// a loopback issuer).
// Every one is distinct (its jti is random).
func mintToken(iss *issuer) (string, error) {
	return iss.Mint(devissuer.Token{
		Subject:  "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c",
		ClientID: "mcp-client-0a1b2c3d",
		Scopes:   []string{"mcp:tools", "mcp:resources", "openid", "profile"},
		TTL:      3 * time.Hour, // outlives any run, ws-1m included
		Extra:    map[string]any{"auth_time": time.Now().Unix(), "sid": strings.Repeat("s", 36), "acr": "urn:mace:incommon:iap:silver"},
	})
}

// buildRequest is the CheckRequest for a token: an MCP tools/call as
// Envoy sends it (check.MCPToolCall), marshalled once so that every use of the
// token sends the same bytes without re-encoding them.
func buildRequest(tok string) ([]byte, error) {
	req, err := check.MCPToolCall(resourceURI, tok).Proto()
	if err != nil {
		return nil, err
	}
	return proto.Marshal(req)
}

// tokenSet is n distinct tokens, as ready-to-send requests.
type tokenSet struct {
	alg      string
	reqs     [][]byte
	tokenLen int // bytes of one token (the first)
	reqLen   int // bytes of one marshalled CheckRequest (the first)
	took     time.Duration
}

// mintSet mints n JWTs of the issuer and builds their requests.
func mintSet(ctx context.Context, iss *issuer, n int) (*tokenSet, error) {
	return buildSet(ctx, iss.alg, n, func(int) (string, error) { return mintToken(iss) })
}

// buildSet mints n tokens with mint (given each token's index) and builds
// their requests in parallel on every core. Only the requests are kept: a
// million tokens would otherwise be held twice.
func buildSet(ctx context.Context, alg string, n int, mint func(i int) (string, error)) (*tokenSet, error) {
	start := time.Now()
	ts := &tokenSet{alg: alg, reqs: make([][]byte, n)}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range runtime.NumCPU() {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tok, err := mint(i)
				var req []byte
				if err == nil {
					req, err = buildRequest(tok)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
				ts.reqs[i] = req
				if i == 0 {
					ts.tokenLen, ts.reqLen = len(tok), len(req)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ts.took = time.Since(start)
	return ts, nil
}
