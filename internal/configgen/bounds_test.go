package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/pkg/config"
)

// TestValidateEnforcesSchemaBounds: the bounds and enums the schema
// states (from the schema tags) are the ones Parse enforces, so a tag
// cannot drift from validate*.go unnoticed. For every number with a
// minimum or maximum and every string enum outside the resource list:
// the bound itself is accepted, one past it is refused at that key.
func TestValidateEnforcesSchemaBounds(t *testing.T) {
	raw, err := Schema("../../pkg/config")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	type probe struct {
		path  string
		value any
		ok    bool
	}
	var probes []probe
	var walk func(node map[string]any, path string)
	walk = func(node map[string]any, path string) {
		props, _ := node["properties"].(map[string]any)
		for key, p := range props {
			prop := p.(map[string]any)
			kp := strings.TrimPrefix(path+"."+key, ".")
			if kp == "resources" {
				continue
			}
			switch prop["type"] {
			case "object":
				walk(prop, kp)
			case "integer", "number":
				step := 1.0
				if prop["type"] == "number" {
					step = 0.5
				}
				if m, ok := prop["minimum"].(float64); ok {
					probes = append(probes, probe{kp, m, true}, probe{kp, m - step, false})
				}
				if m, ok := prop["maximum"].(float64); ok {
					probes = append(probes, probe{kp, m, true}, probe{kp, m + step, false})
				}
			case "string":
				if enum, ok := prop["enum"].([]any); ok {
					for _, v := range enum {
						probes = append(probes, probe{kp, v, true})
					}
					probes = append(probes, probe{kp, "not-" + enum[0].(string), false})
				}
			}
		}
	}
	walk(root, "")
	if len(probes) < 30 {
		t.Fatalf("only %d probes: the walk lost the schema's bounds", len(probes))
	}
	for _, p := range probes {
		doc := map[string]any{
			// A Redis, so that the cache.redis keys apply.
			"cache": map[string]any{"redis_url": "redis://127.0.0.1:6379"},
			"resources": []any{map[string]any{
				"name": "mcp", "resource": "https://mcp.example.com/mcp",
				"authorization_servers": []any{map[string]any{"issuer": "https://auth.example.com"}},
			}},
		}
		m := doc
		parts := strings.Split(p.path, ".")
		for _, k := range parts[:len(parts)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		v := p.value
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f) // an integer key must be written as one
		}
		m[parts[len(parts)-1]] = v
		data, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = config.Parse(data)
		refused := false
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				refused = refused || e.Path == p.path
			}
		}
		if p.ok && err != nil {
			t.Errorf("%s: %v is within the schema but Parse refuses the file: %v", p.path, v, err)
		}
		if !p.ok && !refused {
			t.Errorf("%s: %v is outside the schema but Parse does not refuse that key (err: %v)", p.path, v, err)
		}
	}
}
