package main

import (
	"fmt"
	"testing"

	"github.com/extauthz/extauthz/pkg/config"
)

// TestAdminPProfOnlyWhenEnabled: the profiler is served only with
// admin.pprof; the status page and /metrics always.
func TestAdminPProfOnlyWhenEnabled(t *testing.T) {
	iss, _ := startIssuer(t, sharedResource)
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", enabled), func(t *testing.T) {
			cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: {grpc: "127.0.0.1:0", http: "off", admin: "127.0.0.1:0"}
admin: {pprof: %v}
resources:
  - {name: mcp, resource: %q, authorization_servers: [{issuer: %q, jwks_uri: %q}]}
`, enabled, sharedResource, iss.Issuer(), iss.JWKSURL())))
			if err != nil {
				t.Fatal(err)
			}
			g := runGateway(t, cfg, appOptions{})
			admin := "http://" + g.app.lnAdmin.Addr().String()
			want := map[string]int{"/debug/pprof/": 404, "/debug/pprof/cmdline": 404, "/": 200, "/metrics": 200}
			if enabled {
				want["/debug/pprof/"], want["/debug/pprof/cmdline"] = 200, 200
			}
			for path, status := range want {
				if got, _ := g.get(t, admin+path); got != status {
					t.Errorf("GET %s: %d, want %d", path, got, status)
				}
			}
		})
	}
}
