package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/pkg/config"
)

// noMatch is written into every key with a pattern: it has a space and no
// ":" or "/", so it matches none of them (the test checks that it does not).
const noMatch = "no match"

// TestValidateEnforcesSchemaBounds: the constraints the schema states
// (from the struct tags) are ones Parse enforces, so a tag cannot drift
// from Validate unnoticed. For every key, outside and inside resources[]
// (and its lists: authorization_servers[], rules[], public[]): a number's
// minimum and maximum are accepted and one past each is refused; each
// value of an enum is accepted and another is refused; a minLength is
// accepted and one less is refused; a string that does not match the
// key's pattern is refused. Outside resources[], an accepted value must
// leave the whole file valid; inside, where other keys may then be
// required (token_mode: introspection needs a client), it must not be
// refused at its own key. The login and introspection keys are probed
// with the block in use (login enabled, token_mode auto).
func TestValidateEnforcesSchemaBounds(t *testing.T) {
	raw, err := Schema("../../pkg/config")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	defs := root["$defs"].(map[string]any)
	type probe struct {
		path  string
		value any
		ok    bool
	}
	var probes []probe
	// resolve follows a $ref into $defs.
	resolve := func(node map[string]any) map[string]any {
		if ref, ok := node["$ref"].(string); ok {
			return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return node
	}
	var walk func(node map[string]any, path string)
	var leaf func(prop map[string]any, kp string)
	leaf = func(prop map[string]any, kp string) {
		switch prop["type"] {
		case "object":
			walk(prop, kp)
		case "array":
			if items, ok := prop["items"].(map[string]any); ok {
				leaf(resolve(items), kp+"[0]")
			}
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
			if m, ok := prop["minLength"].(float64); ok {
				probes = append(probes, probe{kp, strings.Repeat("a", int(m)), true}, probe{kp, strings.Repeat("a", int(m)-1), false})
			}
			if p, ok := prop["pattern"].(string); ok {
				if regexp.MustCompile(p).MatchString(noMatch) {
					t.Fatalf("%s: %q matches the pattern %s", kp, noMatch, p)
				}
				probes = append(probes, probe{kp, noMatch, false})
			}
		}
	}
	walk = func(node map[string]any, path string) {
		props, _ := node["properties"].(map[string]any)
		for key, p := range props {
			kp := strings.TrimPrefix(path+"."+key, ".")
			leaf(resolve(p.(map[string]any)), kp)
		}
	}
	walk(root, "")
	count := map[string]int{}
	for _, p := range probes {
		switch {
		case strings.HasPrefix(p.path, "resources["):
			count["resources"]++
		default:
			count["top"]++
		}
		if v, ok := p.value.(string); ok && v == noMatch {
			count["pattern"]++
		}
	}
	if count["top"] < 30 || count["resources"] < 15 || count["pattern"] < 10 {
		t.Fatalf("probes %v: the walk lost the schema's constraints", count)
	}
	for _, p := range probes {
		doc := map[string]any{
			// A Redis, so that the cache.redis keys apply.
			"cache": map[string]any{"redis_url": "redis://127.0.0.1:6379"},
			"resources": []any{map[string]any{
				"name": "mcp", "resource": "https://mcp.example.com/mcp",
				"authorization_servers": []any{map[string]any{"issuer": "https://auth.example.com"}},
				"rules":                 []any{map[string]any{"policy": "true"}},
				"public":                []any{map[string]any{"path": "/mcp/health", "methods": []any{"GET"}}},
			}},
		}
		// The blocks whose keys apply only when another key says so.
		if strings.HasPrefix(p.path, "resources[0].login.") {
			set(doc, "resources[0].login.enabled", true)
		}
		if strings.HasPrefix(p.path, "resources[0].upstream_token.") && p.path != "resources[0].upstream_token.mode" {
			set(doc, "resources[0].upstream_token.mode", "exchange")
		}
		if strings.HasPrefix(p.path, "resources[0].authorization_servers[0].introspection.") {
			set(doc, "resources[0].authorization_servers[0].token_mode", "auto")
		}
		if strings.HasPrefix(p.path, "ssf.transmitters[0].") {
			set(doc, "ssf.audience", "https://gateway.example.com/ssf")
			set(doc, "ssf.transmitters[0].issuer", "https://idp.example.com")
		}
		v := p.value
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f) // an integer key must be written as one
		}
		set(doc, p.path, v)
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
		strict := !strings.HasPrefix(p.path, "resources[")
		if p.ok && (refused || (strict && err != nil)) {
			t.Errorf("%s: %q is within the schema but Parse refuses it: %v", p.path, v, err)
		}
		if !p.ok && !refused {
			t.Errorf("%s: %q is outside the schema but Parse does not refuse that key (err: %v)", p.path, v, err)
		}
	}
}

// set writes v at key path p (a.b[0].c) in doc, creating the mappings on
// the way; a [0] selects the first element of a list, which for a list of
// strings becomes [v].
func set(doc map[string]any, p string, v any) {
	m := doc
	parts := strings.Split(p, ".")
	for i, part := range parts {
		last := i == len(parts)-1
		key, idx, isElem := strings.Cut(part, "[")
		if !isElem {
			if last {
				m[key] = v
				return
			}
			next, ok := m[key].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[key] = next
			}
			m = next
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(idx, "]")); err != nil || n != 0 {
			panic("set: only [0] is supported: " + p)
		}
		if last {
			m[key] = []any{v}
			return
		}
		list, _ := m[key].([]any)
		if len(list) == 0 {
			list = []any{map[string]any{}}
			m[key] = list
		}
		m = list[0].(map[string]any)
	}
}
