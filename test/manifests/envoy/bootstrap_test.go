package envoy_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// composeConfig is the gateway policy the compose stack mounts; envoy.yaml
// is that stack's Envoy, so the two must agree.
const composeConfig = "../deploy/compose/extauthz.yaml"

func loadComposeConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(composeConfig)
	if err != nil {
		t.Fatalf("%s (extauthz check-config):\n%v", composeConfig, err)
	}
	return cfg
}

// defaultMaxBodyBytes is the gateway's default mcp.max_body_bytes, read
// from the config package rather than copied.
func defaultMaxBodyBytes(t *testing.T) int {
	t.Helper()
	cfg, err := config.Parse([]byte(`resources:
  - name: x
    resource: "http://127.0.0.1:1/x"
    authorization_servers: [{issuer: "http://127.0.0.1:2"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.MCP.MaxBodyBytes
}

func checkBootstrap(t *testing.T, path string) {
	var b bootstrapv3.Bootstrap
	decodeEnvoy(t, path, &b)
	gw := loadComposeConfig(t)

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	chains := listeners[0].GetFilterChains()
	if len(chains) != 1 || len(chains[0].GetFilters()) != 1 {
		t.Fatalf("want one filter chain with one network filter (the HTTP connection manager)")
	}
	hcm, err := manifests.Unpack[*hcmv3.HttpConnectionManager](chains[0].GetFilters()[0].GetTypedConfig())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("PathNormalization", func(t *testing.T) {
		// What Envoy routes and what the gateway decides must agree.
		if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
			hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
			t.Errorf("want normalize_path, merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST; got %v, %v, %v",
				hcm.GetNormalizePath(), hcm.GetMergeSlashes(), hcm.GetPathWithEscapedSlashesAction())
		}
		// A header spelled with "_" reads as the identity header to
		// CGI-style upstreams.
		if got := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); got != corev3.HttpProtocolOptions_REJECT_REQUEST {
			t.Errorf("headers_with_underscores_action %v, want REJECT_REQUEST", got)
		}
	})

	filters := hcm.GetHttpFilters()
	var names []string
	for _, f := range filters {
		names = append(names, f.GetName())
	}
	if len(filters) != 2 || names[0] != "envoy.filters.http.ext_authz" || names[1] != "envoy.filters.http.router" {
		t.Fatalf("http_filters %v, want ext_authz then router", names)
	}
	ea, err := manifests.Unpack[*extauthzv3.ExtAuthz](filters[0].GetTypedConfig())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ExtAuthz", func(t *testing.T) {
		checkExtAuthz(t, ea)
		if got, want := int(ea.GetWithRequestBody().GetMaxRequestBytes()), gw.MCP.MaxBodyBytes; got != want {
			t.Errorf("with_request_body.max_request_bytes %d, the compose gateway's mcp.max_body_bytes %d", got, want)
		}
		// The Check's timeout must leave the gateway room for its own
		// bounded calls, so that their failure is the gateway's clean 503.
		timeout := ea.GetGrpcService().GetTimeout().AsDuration()
		floor := 2 * gw.Cache.Redis.Timeout.D()
		for _, r := range gw.Resources {
			for _, as := range r.AuthorizationServers {
				if as.TokenMode != config.TokenModeJWT {
					floor = max(floor, 2*as.Introspection.Timeout.D())
				}
			}
		}
		floor = max(floor, 2*300*time.Millisecond) // the default introspection timeout, for a config that adds it
		if timeout < floor {
			t.Errorf("grpc_service.timeout %v, want at least %v (twice the gateway's own bounds)", timeout, floor)
		}
	})

	t.Run("HeaderMutationRules", func(t *testing.T) {
		rules := ea.GetDecoderHeaderMutationRules()
		if !rules.GetDisallowAll().GetValue() || !rules.GetDisallowIsError().GetValue() {
			t.Fatalf("want disallow_all and disallow_is_error, so that only the listed headers are changed and any other change fails closed")
		}
		// Envoy's RE2 matches the whole header name, as ^(?:…)$ does here.
		re, err := regexp.Compile("^(?:" + rules.GetAllowExpression().GetRegex() + ")$")
		if err != nil {
			t.Fatal(err)
		}
		up := gw.Upstream
		under := func(h string) string { return strings.ReplaceAll(h, "-", "_") }
		for _, h := range []string{up.SubjectHeader, up.ClientIDHeader, up.ScopesHeader, "authorization", "cookie",
			under(up.SubjectHeader), under(up.ClientIDHeader), under(up.ScopesHeader)} {
			if !re.MatchString(h) {
				t.Errorf("allow_expression does not allow %q, which the gateway sets or removes upstream", h)
			}
		}
		for _, h := range []string{"host", ":path", ":authority", "x-envoy-original-path", "x-forwarded-for", "x-extauthz-subjectx", "content-length"} {
			if re.MatchString(h) {
				t.Errorf("allow_expression allows %q", h)
			}
		}
	})

	t.Run("Clusters", func(t *testing.T) {
		wantAddr := map[string]string{"extauthz": gw.Listen.GRPC, "extauthz_http": gw.Listen.HTTP}
		for name, addr := range wantAddr {
			c := clusters[name]
			if c == nil {
				t.Errorf("no cluster %q", name)
				continue
			}
			if got := endpoint(c); got != addr {
				t.Errorf("cluster %s points at %s, the compose gateway listens on %s", name, got, addr)
			}
		}
		grpc := clusters["extauthz"]
		opts, ok := grpc.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if !ok {
			t.Fatal("cluster extauthz: no HttpProtocolOptions; gRPC needs HTTP/2")
		}
		po, err := manifests.Unpack[*upstreamhttpv3.HttpProtocolOptions](opts)
		if err != nil {
			t.Fatal(err)
		}
		if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			t.Error("cluster extauthz must speak HTTP/2 (explicit_http_config.http2_protocol_options)")
		}
		hc := grpc.GetHealthChecks()
		if len(hc) != 1 || hc[0].GetGrpcHealthCheck().GetServiceName() != "envoy.service.auth.v3.Authorization" {
			t.Errorf("cluster extauthz: want a gRPC health check of envoy.service.auth.v3.Authorization, got %v", hc)
		}
	})

	vhosts := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhosts) != 1 {
		t.Fatalf("%d virtual hosts, want 1", len(vhosts))
	}
	routes := vhosts[0].GetRoutes()

	t.Run("RoutesReferToDefinedClustersAndFilters", func(t *testing.T) {
		for _, r := range routes {
			if c := r.GetRoute().GetCluster(); clusters[c] == nil {
				t.Errorf("route %s: no cluster %q", r.GetName(), c)
			}
			for k := range r.GetTypedPerFilterConfig() {
				if k != names[0] && k != names[1] {
					t.Errorf("route %s: typed_per_filter_config for %q, which is not an HTTP filter of the listener", r.GetName(), k)
				}
			}
		}
	})

	t.Run("Routing", func(t *testing.T) {
		resources := map[string]bool{}
		for _, r := range gw.Resources {
			resources[r.Name] = true
		}
		for _, tc := range []struct {
			path, route, cluster string
			checked              bool
			resource             string
		}{
			{"/mcp", "mcp", "mcp_server", true, "mcp"},
			{"/mcp/sub", "mcp", "mcp_server", true, "mcp"},
			{"/.well-known/oauth-protected-resource", "protected-resource-metadata", "extauthz_http", false, ""},
			{"/.well-known/oauth-protected-resource/mcp", "protected-resource-metadata", "extauthz_http", false, ""},
			{"/oauth/login", "login", "extauthz_http", false, ""},
			{"/oauth/callback", "login", "extauthz_http", false, ""},
			{"/mcpx", "", "", true, ""},
			{"/", "", "", true, ""},
		} {
			r := firstMatch(routes, tc.path)
			if tc.route == "" {
				if r != nil {
					t.Errorf("%s is routed to %s; want no route", tc.path, r.GetName())
				}
				continue
			}
			if r == nil || r.GetName() != tc.route {
				t.Errorf("%s: route %v, want %s", tc.path, r.GetName(), tc.route)
				continue
			}
			if r.GetRoute().GetCluster() != tc.cluster {
				t.Errorf("%s: cluster %s, want %s", tc.path, r.GetRoute().GetCluster(), tc.cluster)
			}
			pr := perRoute(t, r)
			if checked := pr == nil || !pr.GetDisabled(); checked != tc.checked {
				t.Errorf("%s: ext_authz checked=%v, want %v", tc.path, checked, tc.checked)
			}
			res := pr.GetCheckSettings().GetContextExtensions()["resource"]
			if res != tc.resource {
				t.Errorf("%s: context_extensions.resource %q, want %q", tc.path, res, tc.resource)
			}
			if res != "" && !resources[res] {
				t.Errorf("%s: context_extensions.resource %q is not a resource of %s", tc.path, res, composeConfig)
			}
		}
		// The Host header must never choose the resource: every route the
		// gateway is asked about names it, and the gateway refuses a Check
		// that does not.
		if !gw.RequireExplicitResource {
			t.Errorf("%s: want require_explicit_resource: true (every checked route names its resource)", composeConfig)
		}
		for _, r := range routes {
			if pr := perRoute(t, r); (pr == nil || !pr.GetDisabled()) && pr.GetCheckSettings().GetContextExtensions()["resource"] == "" {
				t.Errorf("route %s is checked without naming its resource in context_extensions", r.GetName())
			}
		}
	})

	t.Run("PublicURLIsTheListener", func(t *testing.T) {
		port := listeners[0].GetAddress().GetSocketAddress().GetPortValue()
		if !strings.HasSuffix(gw.PublicURL, fmt.Sprintf(":%d", port)) {
			t.Errorf("public_url %s does not name Envoy's port %d", gw.PublicURL, port)
		}
	})
}

func endpoint(c *clusterv3.Cluster) string {
	for _, e := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range e.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			return net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
		}
	}
	return ""
}

// firstMatch is Envoy's route selection for the path specifiers used here.
func firstMatch(routes []*routev3.Route, path string) *routev3.Route {
	for _, r := range routes {
		m := r.GetMatch()
		switch {
		case m.GetPrefix() != "":
			if strings.HasPrefix(path, m.GetPrefix()) {
				return r
			}
		case m.GetPath() != "":
			if path == m.GetPath() {
				return r
			}
		case m.GetPathSeparatedPrefix() != "":
			p := m.GetPathSeparatedPrefix()
			if path == p || strings.HasPrefix(path, p+"/") {
				return r
			}
		}
	}
	return nil
}

func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	a, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
	if !ok {
		return nil
	}
	pr, err := manifests.Unpack[*extauthzv3.ExtAuthzPerRoute](a)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}
