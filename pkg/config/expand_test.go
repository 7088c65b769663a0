package config

import (
	"errors"
	"strings"
	"testing"
)

// envMap is a fixed environment for ParseEnv.
func envMap(m map[string]string) LookupFunc {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

const expandDoc = `
public_url: "${PUBLIC_URL}"
log: {level: "${LEVEL:-warn}"}
cache: {max_ttl: "${MAX_TTL}"}
resources:
  - name: mcp
    resource: "${PUBLIC_URL}/mcp"
    authorization_servers:
      - issuer: ${ISSUER}
    required_scopes: ["mcp:tools"]
    resource_name: ${NAME}
`

func TestExpansion(t *testing.T) {
	base := map[string]string{
		"PUBLIC_URL": "https://mcp.example.com",
		"MAX_TTL":    "90s",
		"ISSUER":     "https://auth.example.com",
		"NAME":       "Tools",
	}
	env := func(over map[string]string) LookupFunc {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range over {
			if v == "<unset>" {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		return envMap(m)
	}

	t.Run("values, defaults and durations", func(t *testing.T) {
		c, err := ParseEnv([]byte(expandDoc), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		r := c.Resources[0]
		if c.PublicURL != "https://mcp.example.com" || r.Resource != "https://mcp.example.com/mcp" ||
			r.AuthorizationServers[0].Issuer != "https://auth.example.com" || c.Log.Level != "warn" ||
			c.Cache.MaxTTL.D().String() != "1m30s" || r.ResourceName != "Tools" {
			t.Errorf("got %+v %+v", c, r)
		}
		// Derived from the expanded canonical URI.
		if r.PathPrefix != "/mcp" || r.Hosts[0] != "mcp.example.com" {
			t.Errorf("derived hosts %v, path_prefix %q", r.Hosts, r.PathPrefix)
		}
	})
	t.Run("an unset variable names itself and the key", func(t *testing.T) {
		_, err := ParseEnv([]byte(expandDoc), env(map[string]string{"ISSUER": "<unset>"}))
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Fatalf("err = %v", err)
		}
		if es[0].Path != "resources[0].authorization_servers[0].issuer" || !strings.Contains(es[0].Msg, "environment variable ISSUER is not set") || es[0].Line != 9 {
			t.Errorf("error = %+v", es[0])
		}
	})
	t.Run("an empty variable is an error without a default", func(t *testing.T) {
		_, err := ParseEnv([]byte(expandDoc), env(map[string]string{"NAME": ""}))
		if err == nil || !strings.Contains(err.Error(), "resources[0].resource_name: environment variable NAME is empty") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty through a default means omitted", func(t *testing.T) {
		doc := strings.Replace(expandDoc, "${LEVEL:-warn}", "${LEVEL:-}", 1)
		c, err := ParseEnv([]byte(doc), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Log.Level != "info" {
			t.Errorf("log.level = %q, want the default", c.Log.Level)
		}
	})
	t.Run("a value cannot inject YAML", func(t *testing.T) {
		evil := "Tools\nresources: []\nunmatched: allow\n  - x: ${ISSUER}"
		c, err := ParseEnv([]byte(expandDoc), env(map[string]string{"NAME": evil}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Resources[0].ResourceName != evil || c.Unmatched != "deny" || len(c.Resources) != 1 {
			t.Errorf("resource_name %q, unmatched %q", c.Resources[0].ResourceName, c.Unmatched)
		}
		// Expansion is not recursive: the "${ISSUER}" inside the value stays.
		if !strings.Contains(c.Resources[0].ResourceName, "${ISSUER}") {
			t.Error("a reference inside a value was expanded")
		}
	})
	t.Run("a quote in a value stays in it", func(t *testing.T) {
		c, err := ParseEnv([]byte(expandDoc), env(map[string]string{"NAME": `a", unmatched: "allow`}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Unmatched != "deny" || c.Resources[0].ResourceName != `a", unmatched: "allow` {
			t.Errorf("unmatched %q, name %q", c.Unmatched, c.Resources[0].ResourceName)
		}
	})
	t.Run("numbers are not expanded", func(t *testing.T) {
		doc := expandDoc + "\ngrpc:\n  max_recv_msg_bytes: ${N}\n"
		_, err := ParseEnv([]byte(doc), env(map[string]string{"N": "1"}))
		if err == nil || !strings.Contains(err.Error(), "grpc.max_recv_msg_bytes: must be an integer") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestExpand(t *testing.T) {
	env := envMap(map[string]string{"A": "x", "EMPTY": "", "B_2": "y"})
	for _, tt := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "cost $5 and ^a$", want: "cost $5 and ^a$"},
		{in: "${A}", want: "x"},
		{in: "<${A}${B_2}>", want: "<xy>"},
		{in: "$${A}", want: "${A}"},
		{in: "$${A} and ${A}", want: "${A} and x"},
		{in: "${MISSING:-dflt}", want: "dflt"},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${EMPTY:-}", want: ""},
		{in: "${MISSING:-}", want: ""},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "${EMPTY}", err: "environment variable EMPTY is empty"},
		{in: "${A", err: `without a closing "}"`},
		{in: "${}", err: "does not name an environment variable"},
		{in: "${1A}", err: "does not name an environment variable"},
		{in: "${A B}", err: "does not name an environment variable"},
		{in: "${A-x}", err: "does not name an environment variable"},
		{in: "${A:-${B_2}}", err: "cannot hold another reference"},
	} {
		got, err := expand(tt.in, env)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
