package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/test/manifests/internal/manifests"

	// The typed configs of envoy/envoy.yaml (see envoy/envoy_test.go).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// loadCompose loads docker-compose.yaml as `docker compose` would, from an
// empty environment (so every ${VAR:-default} takes its default), validated
// against the Compose specification's schema: an unknown key is an error.
func loadCompose(t *testing.T, path string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		// As `docker compose` does without -p: the file's name: wins.
		o.SetProjectName("directory-name", false)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

func TestComposeRefusesUnknownKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "    network_mode: \"service:envoy\"\n", "    network_mod: \"service:envoy\"\n", 1)
	if bad == string(b) {
		t.Fatal("test data: no network_mode line to misspell")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "docker-compose.yaml")
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{WorkingDir: dir, ConfigFiles: []types.ConfigFile{{Filename: p}}, Environment: types.Mapping{}}
	_, err = loader.LoadWithContext(context.Background(), details, func(o *loader.Options) { o.SetProjectName("x", false) })
	if err == nil || !strings.Contains(err.Error(), "network_mod") {
		t.Fatalf("a misspelt key was not refused: %v", err)
	}
}

func TestCompose(t *testing.T) {
	p := loadCompose(t, filepath.Join(root, "docker-compose.yaml"))
	if p.Name != "extauthz" {
		t.Errorf("project name %q, want extauthz (name: in the file)", p.Name)
	}
	svc := func(name string) types.ServiceConfig {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no service %q", name)
		}
		return s
	}
	envoy, gw, redis, as, mcp := svc("envoy"), svc("extauthz"), svc("redis"), svc("authserver"), svc("mcp-server")
	if len(p.Services) != 5 {
		t.Errorf("services %v, want envoy, extauthz, redis, authserver, mcp-server", slices.Sorted(func(yield func(string) bool) {
			for n := range p.Services {
				if !yield(n) {
					return
				}
			}
		}))
	}

	t.Run("ImagesPinned", func(t *testing.T) {
		for name, s := range p.Services {
			if s.Build != nil {
				globals, stages := parseDockerfile(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
				args := map[string]string{}
				for _, g := range globals {
					if k, v, ok := strings.Cut(g.Args, "="); ok {
						args[k] = v
					}
				}
				for _, st := range stages {
					// distroless publishes no version tags: its :nonroot is
					// pinned by digest at release time (see CI notes).
					if strings.HasPrefix(st.Image, "gcr.io/distroless/") && strings.HasSuffix(st.Image, ":nonroot") {
						continue
					}
					if !pinned(st.Image, args) {
						t.Errorf("%s: its Dockerfile's FROM %s is not pinned to a version", name, st.Image)
					}
				}
				continue
			}
			if !pinned(s.Image, nil) {
				t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
			}
		}
	})

	t.Run("PortsOnLoopbackOnly", func(t *testing.T) {
		for name, s := range p.Services {
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s:%s->%d: publish on 127.0.0.1 only", name, port.HostIP, port.Published, port.Target)
				}
			}
			if len(s.Ports) > 0 && name != "envoy" {
				t.Errorf("%s publishes ports, but it shares Envoy's network namespace: publish them on envoy", name)
			}
		}
	})

	t.Run("OneNetworkNamespace", func(t *testing.T) {
		for name, s := range p.Services {
			if name != "envoy" && s.NetworkMode != "service:envoy" {
				t.Errorf("%s: network_mode %q, want service:envoy (the URLs in the configs are loopback URLs of that namespace)", name, s.NetworkMode)
			}
		}
	})

	// The gateway: built from the Dockerfile, its config checked exactly as
	// `extauthz check-config` checks it.
	var cfg *config.Config
	t.Run("Gateway", func(t *testing.T) {
		if gw.Build == nil || filepath.Clean(gw.Build.Context) != mustAbs(t, root) || gw.Build.Dockerfile != "Dockerfile" {
			t.Fatalf("extauthz must be built from the repository's Dockerfile, got %+v", gw.Build)
		}
		cfgPath := flagValue(gw.Command, "--config")
		if cfgPath == "" {
			t.Fatalf("command %v has no --config", gw.Command)
		}
		mounted := false
		for _, v := range gw.Volumes {
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Target, "/etc/extauthz") {
				continue
			}
			if !v.ReadOnly {
				t.Errorf("%s is mounted read-write", v.Target)
			}
			c, err := config.Load(v.Source)
			if err != nil {
				t.Fatalf("%s (mounted at %s) fails the gateway's config check:\n%v", v.Source, v.Target, err)
			}
			if v.Target == cfgPath {
				mounted, cfg = true, c
			}
		}
		if !mounted {
			t.Fatalf("--config %s is not a file mounted into the container", cfgPath)
		}
		for _, env := range secretEnvs(cfg) {
			if v := gw.Environment[env]; v == nil || *v == "" {
				t.Errorf("the config reads a secret from $%s, which the service does not set", env)
			}
		}
		if !gw.ReadOnly || !slices.Contains(gw.CapDrop, "ALL") {
			t.Error("extauthz: want read_only and cap_drop ALL")
		}
	})
	if cfg == nil {
		t.FailNow()
	}

	published := map[string]bool{}
	for _, port := range envoy.Ports {
		published[fmt.Sprint(port.Target)] = port.Published == fmt.Sprint(port.Target)
	}

	t.Run("Envoy", func(t *testing.T) {
		var b bootstrapv3.Bootstrap
		bootstrap := ""
		for _, v := range envoy.Volumes {
			if v.Target == "/etc/envoy/envoy.yaml" {
				bootstrap = v.Source
			}
		}
		if bootstrap != mustAbs(t, filepath.Join(root, "envoy", "envoy.yaml")) || flagValue(envoy.Command, "--config-path") != "/etc/envoy/envoy.yaml" {
			t.Fatalf("envoy must run envoy/envoy.yaml (mounted %q, command %v)", bootstrap, envoy.Command)
		}
		docs, err := manifests.ReadDocs(bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		if err := manifests.DecodeProto(docs[0], &b); err != nil {
			t.Fatal(err)
		}
		clusters := map[string]string{}
		for _, c := range b.GetStaticResources().GetClusters() {
			for _, e := range c.GetLoadAssignment().GetEndpoints() {
				for _, lb := range e.GetLbEndpoints() {
					sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
					clusters[c.GetName()] = fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
				}
			}
		}
		if clusters["mcp_server"] != "127.0.0.1:"+envValue(mcp, "PORT") {
			t.Errorf("Envoy's mcp_server cluster is %s, the MCP server listens on PORT=%s", clusters["mcp_server"], envValue(mcp, "PORT"))
		}
		for _, l := range b.GetStaticResources().GetListeners() {
			port := fmt.Sprint(l.GetAddress().GetSocketAddress().GetPortValue())
			if !published[port] {
				t.Errorf("Envoy's listener %s (port %s) is not published on the same host port", l.GetName(), port)
			}
		}
		pub, err := url.Parse(cfg.PublicURL)
		if err != nil || pub.Hostname() != "127.0.0.1" || !published[pub.Port()] {
			t.Errorf("public_url %s is not Envoy's published port on the host's 127.0.0.1", cfg.PublicURL)
		}
		if admin := cfg.Listen.Admin; admin != config.Off {
			if _, port, _ := strings.Cut(admin, ":"); !published[port] {
				t.Errorf("the admin listener %s is not published (metrics, purge)", admin)
			}
		}
	})

	t.Run("AuthorizationServer", func(t *testing.T) {
		var asCfg struct {
			Port      int              `json:"port"`
			Clients   []map[string]any `json:"clients"` // oidc-provider client metadata
			Resources []struct {
				Resource string `json:"resource"`
				Scope    string `json:"scope"`
				Format   string `json:"format"`
				TTL      int    `json:"accessTokenTTL"`
			} `json:"resources"`
			RegistrationIgnoresScope bool `json:"registrationIgnoresScope"`
		}
		dec := json.NewDecoder(strings.NewReader(envValue(as, "AUTHSERVER_CONFIG")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&asCfg); err != nil {
			t.Fatalf("AUTHSERVER_CONFIG: %v", err)
		}
		issuer := fmt.Sprintf("http://127.0.0.1:%d", asCfg.Port) // test/authserver/server.mjs's issuer
		if !published[fmt.Sprint(asCfg.Port)] {
			t.Errorf("the authorization server's port %d is not published: MCP clients on the host could not sign in", asCfg.Port)
		}
		if !asCfg.RegistrationIgnoresScope {
			t.Error("registrationIgnoresScope: MCP clients register with their first challenge's scopes and could not step up")
		}
		for _, r := range cfg.Resources {
			if r.AuthorizationServers[0].Issuer != issuer {
				t.Errorf("resource %s trusts %s, the compose authorization server is %s", r.Name, r.AuthorizationServers[0].Issuer, issuer)
			}
			i := -1
			for j, x := range asCfg.Resources {
				if x.Resource == r.Resource {
					i = j
				}
			}
			if i < 0 {
				t.Errorf("the authorization server does not issue tokens for %s", r.Resource)
				continue
			}
			granted := strings.Fields(asCfg.Resources[i].Scope)
			for _, s := range r.ScopesSupported {
				if !slices.Contains(granted, s) {
					t.Errorf("the authorization server cannot grant %s for %s", s, r.Resource)
				}
			}
			if asCfg.Resources[i].Format != "jwt" {
				t.Errorf("tokens for %s are %s; the gateway's config verifies JWTs", r.Resource, asCfg.Resources[i].Format)
			}
		}
	})

	t.Run("Redis", func(t *testing.T) {
		u, err := url.Parse(cfg.Cache.RedisURL)
		if err != nil || u.Host != "127.0.0.1:"+flagValue(redis.Command, "--port") {
			t.Errorf("the gateway's redis_url %s is not the stack's Redis (--port %s)", cfg.Cache.RedisURL, flagValue(redis.Command, "--port"))
		}
	})
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func flagValue(cmd []string, name string) string {
	for i, a := range cmd {
		if a == name && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func envValue(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// secretEnvs lists the environment variables a config reads secrets from.
func secretEnvs(c *config.Config) []string {
	var out []string
	add := func(s config.Secret) {
		if s.Env != "" {
			out = append(out, s.Env)
		}
	}
	add(c.Admin.Token)
	add(c.Cache.RedisPassword)
	add(c.Cache.Redis.Sentinel.Password)
	add(c.Login.SessionKey)
	for _, r := range c.Resources {
		add(r.Login.ClientSecret)
		add(r.Login.PrivateKey)
		for _, as := range r.AuthorizationServers {
			add(as.Introspection.ClientSecret)
			add(as.Introspection.PrivateKey)
		}
	}
	return out
}
