package httpauthz_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/httpauthz"
)

// panicking is a decider with a bug.
type panicking struct{}

func (panicking) Check(context.Context, *authz.Request) authz.Decision { panic("a bug below") }

// TestPanicIsA503: a panic while deciding is the denial table's internal
// answer, a 503 to retry, never an allow — relayed to nginx like any other.
func TestPanicIsA503(t *testing.T) {
	srv := httptest.NewServer(httpauthz.New(panicking{}, httpauthz.Options{}))
	t.Cleanup(srv.Close)
	const body = `{"error":"temporarily_unavailable","error_description":"the request cannot be authorized now; retry later"}`
	hs := [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "mcp.example.com"}, {"X-Forwarded-Uri", "/mcp"}, {"X-Original-Method", "GET"}, {"X-Original-URI", "/mcp"}, {"Host", "mcp.example.com"}}
	for _, mode := range []string{"traefik", "nginx"} {
		a := do(t, "GET", srv.URL+"/authz/"+mode, hs, "")
		if a.status != http.StatusServiceUnavailable || a.body != body || a.header.Get("Retry-After") != "5" {
			t.Errorf("%s: %d %v %s, want the 503 of an internal error", mode, a.status, a.header, a.body)
		}
	}
}
