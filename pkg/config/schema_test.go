package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const schemaPath = "../../api/config.schema.json"

// derivedDefault reports the keys whose default depends on other keys, so
// the schema explains it in the description instead of a "default" value.
func derivedDefault(path string) bool {
	switch path {
	case "resources[].hosts", "resources[].path_prefix", "resources[].scopes_supported", "resources[].allowed_origins",
		"resources[].login.issuer", "resources[].login.scopes", "resources[].upstream_token.issuer":
		return true
	}
	return false
}

type jsonSchema = map[string]any

func loadSchema(t *testing.T) jsonSchema {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return s
}

// resolve follows a local "$ref", keeping the referring node's own
// annotations (2020-12 allows them beside $ref).
func resolve(root, node jsonSchema) jsonSchema {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	target := jsonSchema(root)
	for part := range strings.SplitSeq(strings.TrimPrefix(ref, "#/"), "/") {
		target, _ = target[part].(jsonSchema)
	}
	merged := jsonSchema{}
	for k, v := range resolve(root, target) {
		merged[k] = v
	}
	for k, v := range node {
		if k != "$ref" {
			merged[k] = v
		}
	}
	return merged
}

// TestSchemaMatchesTypes walks the Go types and the schema side by side:
// the same keys at every level in both directions, a matching JSON type,
// additionalProperties false on every object, a description on every
// property, and every documented default equal to what ApplyDefaults sets.
func TestSchemaMatchesTypes(t *testing.T) {
	root := loadSchema(t)
	// A config with only what is required, so every other value is a default.
	c, err := Parse([]byte(`
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    authorization_servers: [{issuer: "https://auth.example.com"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	// A rule with nothing written, so that the walk sees its defaults.
	c.Resources[0].Rules = []Rule{{}}
	// A transmitter with nothing written, likewise.
	c.SSF.Transmitters = []SSFTransmitter{{}}
	c.ApplyDefaults()
	walkSchema(t, root, root, "", reflect.ValueOf(c).Elem())
}

func walkSchema(t *testing.T, root, node jsonSchema, path string, v reflect.Value) {
	t.Helper()
	node = resolve(root, node)
	typ := v.Type()
	if typ == reflect.TypeFor[Duration]() {
		if node["type"] != "string" || node["pattern"] == nil {
			t.Errorf("%s: a duration must be a string with a pattern in the schema", path)
		}
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		if node["type"] != "object" || node["additionalProperties"] != false {
			t.Errorf("%s: want type object with additionalProperties false", path)
		}
		props, _ := node["properties"].(jsonSchema)
		required, _ := node["required"].([]any)
		keys := map[string]bool{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			keys[key] = true
			kp := key
			if path != "" {
				kp = path + "." + key
			}
			prop, ok := props[key].(jsonSchema)
			if !ok {
				t.Errorf("%s: in the Go types but not in the schema", kp)
				continue
			}
			full := resolve(root, prop)
			if d, _ := full["description"].(string); d == "" {
				t.Errorf("%s: no description in the schema", kp)
			}
			def, hasDefault := prop["default"]
			switch {
			case kp == "resources[].rules", kp == "ssf.transmitters":
				// The test adds a rule and a transmitter (to see their
				// defaults), so the lists are not their defaults here.
			case hasDefault:
				checkDefault(t, kp, def, v.Field(i))
			case slices.Contains(required, any(key)), derivedDefault(kp):
			default:
				t.Errorf("%s: neither required nor given a default in the schema", kp)
			}
			walkSchema(t, root, prop, kp, v.Field(i))
		}
		for key := range props {
			if !keys[key] {
				t.Errorf("%s: in the schema but not in the Go types", strings.TrimPrefix(path+"."+key, "."))
			}
		}
	case reflect.Slice:
		if node["type"] != "array" {
			t.Errorf("%s: want type array", path)
		}
		items, _ := node["items"].(jsonSchema)
		elem := reflect.New(typ.Elem()).Elem()
		if v.Len() > 0 {
			elem = v.Index(0)
		}
		walkSchema(t, root, items, strings.TrimPrefix(path, ".")+"[]", elem)
	case reflect.Map:
		items, _ := node["additionalProperties"].(jsonSchema)
		if node["type"] != "object" || items == nil || typ.Key().Kind() != reflect.String {
			t.Errorf("%s: want type object with an additionalProperties schema and string keys", path)
			return
		}
		walkSchema(t, root, items, path+"{}", reflect.New(typ.Elem()).Elem())
	case reflect.Pointer:
		walkSchema(t, root, node, path, reflect.New(typ.Elem()).Elem())
	case reflect.String:
		if node["type"] != "string" {
			t.Errorf("%s: want type string", path)
		}
	case reflect.Int, reflect.Uint32:
		if node["type"] != "integer" {
			t.Errorf("%s: want type integer", path)
		}
	case reflect.Bool:
		if node["type"] != "boolean" {
			t.Errorf("%s: want type boolean", path)
		}
	case reflect.Float64:
		if node["type"] != "number" {
			t.Errorf("%s: want type number", path)
		}
	default:
		t.Errorf("%s: Go kind %s is not covered by this test", path, typ.Kind())
	}
}

// checkDefault compares a schema default with the value ApplyDefaults left
// in v. Object defaults ({}) only say "all children default".
func checkDefault(t *testing.T, path string, def any, v reflect.Value) {
	t.Helper()
	if _, isObject := def.(map[string]any); isObject {
		return
	}
	var got any
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		d, err := time.ParseDuration(def.(string))
		if err != nil || Duration(d) != v.Interface().(Duration) {
			t.Errorf("%s: schema default %v, ApplyDefaults sets %s", path, def, v.Interface().(Duration).D())
		}
		return
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s: schema default %v, ApplyDefaults leaves it unset", path, def)
			return
		}
		got = v.Elem().Interface()
	case v.Kind() == reflect.Slice:
		s := []any{}
		for i := range v.Len() {
			s = append(s, v.Index(i).Interface())
		}
		got = s
	case v.Kind() == reflect.Int, v.Kind() == reflect.Uint32:
		got = float64(v.Convert(reflect.TypeFor[int64]()).Int()) // JSON numbers decode as float64
	default:
		got = v.Interface()
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("%s: schema default %v, ApplyDefaults sets %v", path, def, got)
	}
}

// TestSchemaAcceptsTestdata checks the schema against the files: every
// valid file conforms, and files broken in ways a schema can express do
// not, so an editor using the schema tells the operator what check-config
// would.
func TestSchemaAcceptsTestdata(t *testing.T) {
	root := loadSchema(t)
	valid, err := filepath.Glob("testdata/valid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		valid bool
	}{
		{"invalid-unknown-key-deep.yaml", false},
		{"invalid-unknown-key-top.yaml", false},
		{"invalid-wrong-type.yaml", false},
		{"invalid-duration-number.yaml", false},
		{"invalid-algorithms.yaml", false},
		{"invalid-empty-resources.yaml", false},
		{"invalid-no-resources.yaml", false},
		{"invalid-secret-both.yaml", false},
		{"invalid-redis-password.yaml", false},
		{"invalid-upstream.yaml", false},
		{"invalid-admin-token-both.yaml", false},
		{"invalid-redis-sentinel.yaml", false},
		{"invalid-redis-timeout.yaml", false},
		{"invalid-redis-url.yaml", false},
	}
	for _, f := range valid {
		tests = append(tests, struct {
			file  string
			valid bool
		}{filepath.Base(f), true})
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			problems := conform(root, root, doc, "")
			if tt.valid && len(problems) > 0 {
				t.Errorf("schema rejects a valid file:\n%s", strings.Join(problems, "\n"))
			}
			if !tt.valid && len(problems) == 0 {
				t.Error("schema accepts a file that check-config rejects")
			}
		})
	}
}

func TestDurationPattern(t *testing.T) {
	root := loadSchema(t)
	def, _ := root["$defs"].(jsonSchema)["duration"].(jsonSchema)
	re := regexp.MustCompile(def["pattern"].(string))
	for _, s := range []string{"0", "0s", "30s", "5m", "1h30m", "1.5h", ".5s", "100ms", "10us", "10µs", "2h45m0.5s", "", "5", "300", "-5s", "5 m", "5M", "1d", "s", "+5s"} {
		node := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
		var d Duration
		accepted := d.UnmarshalYAML(node) == nil
		if re.MatchString(s) != accepted {
			t.Errorf("%q: schema pattern matches = %v, Duration accepts = %v", s, !accepted, accepted)
		}
	}
}

// conform is a validator for the subset of JSON Schema that the config
// schema uses. It fails on any keyword it does not know, so the schema
// cannot quietly start relying on something this test ignores.
func conform(root, node jsonSchema, v any, path string) []string {
	node = resolve(root, node)
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	for k := range node {
		switch k {
		case "$schema", "$id", "$defs", "title", "description", "default", "format",
			"type", "properties", "additionalProperties", "required", "items", "enum",
			"pattern", "minimum", "maximum", "minItems", "minLength", "uniqueItems", "not":
		default:
			bad("schema keyword %q is not understood by this test", k)
		}
	}
	if v == nil {
		// A key written with no value means "default" to Parse.
		return out
	}
	switch node["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want an object")
			return out
		}
		props, _ := node["properties"].(jsonSchema)
		extra, _ := node["additionalProperties"].(jsonSchema)
		for k, val := range m {
			p, ok := props[k].(jsonSchema)
			if !ok && extra != nil {
				p, ok = extra, true
			}
			if !ok {
				bad("unknown key %q", k)
				continue
			}
			out = append(out, conform(root, p, val, strings.TrimPrefix(path+"."+k, "."))...)
		}
		req, _ := node["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				bad("missing %q", r)
			}
		}
		if not, ok := node["not"].(jsonSchema); ok && len(conform(root, not, v, path)) == 0 {
			bad("matches a forbidden shape")
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("want an array")
			return out
		}
		if n, ok := node["minItems"].(float64); ok && float64(len(a)) < n {
			bad("fewer than %v items", n)
		}
		if node["uniqueItems"] == true {
			seen := map[string]bool{}
			for _, item := range a {
				k := fmt.Sprint(item)
				if seen[k] {
					bad("repeated item %v", item)
				}
				seen[k] = true
			}
		}
		items, _ := node["items"].(jsonSchema)
		for i, item := range a {
			out = append(out, conform(root, items, item, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			bad("want a string")
			return out
		}
		if p, ok := node["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(s) {
			bad("%q does not match %s", s, p)
		}
		if n, ok := node["minLength"].(float64); ok && float64(len(s)) < n {
			bad("shorter than %v", n)
		}
	case "integer":
		i, ok := v.(int)
		if !ok {
			bad("want an integer")
			return out
		}
		if m, ok := node["minimum"].(float64); ok && float64(i) < m {
			bad("below %v", m)
		}
		if m, ok := node["maximum"].(float64); ok && float64(i) > m {
			bad("above %v", m)
		}
	case "number":
		var f float64
		switch n := v.(type) {
		case int:
			f = float64(n)
		case float64:
			f = n
		default:
			bad("want a number")
			return out
		}
		if m, ok := node["minimum"].(float64); ok && f < m {
			bad("below %v", m)
		}
		if m, ok := node["maximum"].(float64); ok && f > m {
			bad("above %v", m)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean")
		}
	case nil:
		// A "not" clause carries only "required".
		if m, ok := v.(map[string]any); ok {
			req, _ := node["required"].([]any)
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					bad("missing %q", r)
				}
			}
		}
	default:
		bad("schema type %v is not understood by this test", node["type"])
	}
	if enum, ok := node["enum"].([]any); ok && !slices.Contains(enum, v) {
		bad("%v is not one of %v", v, enum)
	}
	return out
}
