package deploy_test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// traefikDynamic transcribes the keys of Traefik v3's dynamic configuration
// that deploy/traefik/dynamic.yaml uses (from Traefik's documentation).
// Traefik's own types (github.com/traefik/traefik/v3/pkg/config/dynamic)
// cannot be imported: that package needs a module Traefik's go.mod replaces
// with a directory of its own repository. Decoded strictly, a misspelt key
// fails here; Traefik itself is not run.
type traefikDynamic struct {
	HTTP struct {
		Routers map[string]struct {
			EntryPoints []string `yaml:"entryPoints"`
			Rule        string   `yaml:"rule"`
			Priority    int      `yaml:"priority"`
			Middlewares []string `yaml:"middlewares"`
			Service     string   `yaml:"service"`
		} `yaml:"routers"`
		Middlewares map[string]struct {
			ForwardAuth *struct {
				Address             string   `yaml:"address"`
				TrustForwardHeader  *bool    `yaml:"trustForwardHeader"`
				AuthResponseHeaders []string `yaml:"authResponseHeaders"`
			} `yaml:"forwardAuth"`
			Headers *struct {
				CustomRequestHeaders map[string]string `yaml:"customRequestHeaders"`
			} `yaml:"headers"`
			StripPrefix *struct {
				Prefixes []string `yaml:"prefixes"`
			} `yaml:"stripPrefix"`
		} `yaml:"middlewares"`
		Services map[string]struct {
			LoadBalancer struct {
				Servers []struct {
					URL string `yaml:"url"`
				} `yaml:"servers"`
				ResponseForwarding *struct {
					FlushInterval string `yaml:"flushInterval"`
				} `yaml:"responseForwarding"`
			} `yaml:"loadBalancer"`
		} `yaml:"services"`
	} `yaml:"http"`
}

// TestTraefikDynamicConfig: every reference resolves, every protected
// router asks the gateway (on /authz/traefik) before anything else, never
// trusts a client's X-Forwarded-* headers, copies the identity headers and
// Cookie, and then removes the token and the "_" spellings.
func TestTraefikDynamicConfig(t *testing.T) {
	b, err := os.ReadFile("traefik/dynamic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c traefikDynamic
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("deploy/traefik/dynamic.yaml: %v", err)
	}
	unprotected := map[string]bool{"metadata": true}
	for name, r := range c.HTTP.Routers {
		if _, ok := c.HTTP.Services[r.Service]; !ok {
			t.Errorf("router %s: no service %q", name, r.Service)
		}
		if r.Rule == "" || !slices.Equal(r.EntryPoints, []string{"web"}) {
			t.Errorf("router %s: rule %q, entry points %v", name, r.Rule, r.EntryPoints)
		}
		for _, m := range r.Middlewares {
			if _, ok := c.HTTP.Middlewares[m]; !ok {
				t.Errorf("router %s: no middleware %q", name, m)
			}
		}
		if unprotected[name] {
			if r.Service != "extauthz" || len(r.Middlewares) != 0 {
				t.Errorf("router %s: the gateway's own paths go to it without authorization", name)
			}
			continue
		}
		if len(r.Middlewares) < 2 || c.HTTP.Middlewares[r.Middlewares[0]].ForwardAuth == nil || r.Middlewares[1] != "extauthz-strip" {
			t.Errorf("router %s: middlewares %v, want a forwardAuth first, then extauthz-strip", name, r.Middlewares)
		}
	}
	for name, m := range c.HTTP.Middlewares {
		fa := m.ForwardAuth
		if fa == nil {
			continue
		}
		if !strings.HasPrefix(fa.Address, "http://extauthz:8080/authz/traefik") || fa.TrustForwardHeader == nil || *fa.TrustForwardHeader ||
			// Authorization among them: Traefik removes the request's and
			// sets the answer's (a minted upstream token, or none), so the
			// client's token never passes.
			!slices.Equal(fa.AuthResponseHeaders, []string{"X-Extauthz-Subject", "X-Extauthz-Client-Id", "X-Extauthz-Scopes", "Cookie", "Authorization"}) {
			t.Errorf("middleware %s: %+v", name, *fa)
		}
	}
	strip := c.HTTP.Middlewares["extauthz-strip"].Headers
	if strip == nil {
		t.Fatal("no extauthz-strip headers middleware")
	}
	for _, h := range []string{"X_Extauthz_Subject", "X_Extauthz_Client_Id", "X_Extauthz_Scopes"} {
		if v, ok := strip.CustomRequestHeaders[h]; !ok || v != "" {
			t.Errorf("extauthz-strip does not remove %s", h)
		}
	}
	// It runs after the forwardAuth: blanking Authorization would drop the
	// minted upstream token.
	if _, ok := strip.CustomRequestHeaders["Authorization"]; ok {
		t.Error("extauthz-strip blanks Authorization, which carries the minted upstream token")
	}
}
