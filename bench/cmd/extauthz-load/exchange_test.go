package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/extauthz/extauthz/pkg/jwks"
	"github.com/extauthz/extauthz/pkg/token"
	"github.com/extauthz/extauthz/pkg/upstream"
)

// TestExchangeEndpoint: the local token endpoint answers the gateway's own
// minter (pkg/upstream, as extauthz serve configures it) with a credential
// it accepts — for the user of the client's token, verified against the
// endpoint's JWKS — refuses a wrong client secret and an audience it does
// not serve, and counts every call; and hit-upstream's answer check passes
// an answer carrying that credential and nothing else.
func TestExchangeEndpoint(t *testing.T) {
	t.Parallel()
	ex, err := startExchange(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ex.close()
	rs := testIssuer(t, "RS256")
	client, err := mintToken(rs)
	if err != nil {
		t.Fatal(err)
	}
	subject := upstream.Subject{Raw: client, Hash: token.CacheHash(client), Expiry: time.Now().Add(3 * time.Hour)}
	minter := func(secret, audience string) *upstream.Minter {
		store, err := upstream.NewStore(upstream.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := upstream.New(upstream.Options{
			Name: "mcp", Mode: upstream.ModeExchange, Issuer: ex.issuer,
			TokenEndpoint: func(context.Context) (string, error) { return ex.endpoint, nil },
			Keys:          jwks.New(func(context.Context) (string, error) { return ex.jwksURI, nil }, jwks.Options{}),
			ClientID:      exchangeClientID, ClientSecret: secret,
			Audience: []string{audience}, Scopes: []string{upstreamScope}, Store: store,
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ctx := context.Background()
	m := minter(ex.secret, upstreamAudience)
	c, err := m.Token(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != upstream.SourceMinted || c.Token == client || !ex.issuedToken(c.Token) || time.Until(c.Expiry) < 2*time.Hour {
		t.Errorf("credential from %s, expiring in %v; the client's: %v, minted by the endpoint: %v",
			c.Source, time.Until(c.Expiry), c.Token == client, ex.issuedToken(c.Token))
	}
	if sub, _ := subjectOf(c.Token); sub != "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c" {
		t.Errorf("minted token names %q", sub)
	}
	if again, err := m.Token(ctx, subject); err != nil || again.Source != upstream.SourceLocal || again.Token != c.Token {
		t.Errorf("second lookup: from %q, same token %v, err %v; want the cached one", again.Source, again.Token == c.Token, err)
	}
	if _, err := minter("wrong", upstreamAudience).Token(ctx, subject); !errors.Is(err, upstream.ErrUnavailable) {
		t.Errorf("wrong secret: %v, want unavailable", err)
	}
	if _, err := minter(ex.secret, "https://elsewhere.example.com").Token(ctx, subject); !errors.Is(err, upstream.ErrRefused) {
		t.Errorf("another audience: %v, want refused", err)
	}
	resp, err := http.Get(ex.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if ex.calls.Load() != 4 || ex.minted.Load() != 1 || ex.refused.Load() != 3 {
		t.Errorf("%d calls, %d minted, %d refused; want 4, 1, 3", ex.calls.Load(), ex.minted.Load(), ex.refused.Load())
	}

	check := ex.answerCheck(client)
	header := func(value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "authorization", Value: value}, AppendAction: action}
	}
	const overwrite = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	identity := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-extauthz-subject", Value: "user"}, AppendAction: overwrite}
	answer := func(remove []string, headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{
			OkResponse: &authv3.OkHttpResponse{Headers: append([]*corev3.HeaderValueOption{identity}, headers...), HeadersToRemove: remove}}}
	}
	if err := check(answer([]string{"x-extauthz-client-id"}, header("Bearer "+c.Token, overwrite))); err != nil {
		t.Errorf("the right answer: %v", err)
	}
	for name, tc := range map[string]struct {
		resp *authv3.CheckResponse
		want string
	}{
		"no header":          {answer(nil), "0 authorization headers"},
		"two":                {answer(nil, header("Bearer "+c.Token, overwrite), header("Bearer "+c.Token, overwrite)), "2 authorization headers"},
		"appended":           {answer(nil, header("Bearer "+c.Token, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)), "want OVERWRITE_IF_EXISTS_OR_ADD"},
		"removed after":      {answer([]string{"Authorization"}, header("Bearer "+c.Token, overwrite)), "headers_to_remove"},
		"not Bearer":         {answer(nil, header("Basic "+c.Token, overwrite)), "not Bearer"},
		"the client's token": {answer(nil, header("Bearer "+client, overwrite)), "the client's own token"},
		"another token":      {answer(nil, header("Bearer "+c.Token+"x", overwrite)), "did not mint"},
		"denied":             {&authv3.CheckResponse{Status: &rpcstatus.Status{Code: 7}}, "no OkHttpResponse"},
	} {
		err := check(tc.resp)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), c.Token) || strings.Contains(err.Error(), client)) {
			t.Errorf("%s: the error names a token: %v", name, err)
		}
	}
}
