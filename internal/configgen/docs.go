package main

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/extauthz/extauthz/pkg/config"
)

// docSections are the keys whose reference table docs/configuration.md
// holds, each between the markers
//
//	<!-- configgen:begin KEY -->
//	<!-- configgen:end -->
//
// ("." is the top level). A section's table lists its keys, with the
// keys of nested objects flattened (tls.enabled), except objects that are
// sections of their own; a secret is one row.
var docSections = []string{".", "listen", "cache", "cache.redis", "admin", "grpc", "runtime", "jwks", "tokens", "upstream",
	"log", "mcp", "login", "resources[]", "resources[].cors", "resources[].login", "resources[].public[]",
	"resources[].rules[]", "resources[].authorization_servers[]",
	"ssf", "ssf.transmitters[]"}

func isSection(path string) bool {
	for _, s := range docSections {
		if s == path {
			return true
		}
	}
	return false
}

var markerRE = regexp.MustCompile(`(?s)(<!-- configgen:begin (\S+) -->\n).*?(<!-- configgen:end -->)`)

// Reference rewrites the generated regions of docs/configuration.md
// (current is its checked-in text), leaving everything else as it is.
func Reference(dir string, current []byte) ([]byte, error) {
	d, err := readDocs(dir)
	if err != nil {
		return nil, err
	}
	c, err := sample()
	if err != nil {
		return nil, err
	}
	tables := map[string]string{}
	g := &generator{docs: d}
	var walk func(t reflect.Type, v reflect.Value, path string)
	walk = func(t reflect.Type, v reflect.Value, path string) {
		sec := path
		if sec == "" {
			sec = "."
		}
		var b strings.Builder
		b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
		g.rows(&b, t, v, path, "", walk)
		tables[sec] = b.String()
	}
	walk(reflect.TypeFor[config.Config](), reflect.ValueOf(c).Elem(), "")
	seen := map[string]bool{}
	var missing error
	out := markerRE.ReplaceAllFunc(current, func(m []byte) []byte {
		sm := markerRE.FindSubmatch(m)
		key := string(sm[2])
		t, ok := tables[key]
		if !ok {
			missing = fmt.Errorf("docs/configuration.md: no section %q", key)
			return m
		}
		seen[key] = true
		return bytes.Join([][]byte{sm[1], []byte(t), sm[3]}, nil)
	})
	if missing != nil {
		return nil, missing
	}
	for _, s := range docSections {
		if !seen[s] {
			return nil, fmt.Errorf("docs/configuration.md has no generated region for %q", s)
		}
	}
	return out, nil
}

// rows writes the table rows of struct type t; prefix is prepended to the
// keys of flattened objects. walk is called for each nested section.
func (g *generator) rows(b *strings.Builder, t reflect.Type, v reflect.Value, path, prefix string,
	walk func(reflect.Type, reflect.Value, string)) {
	for _, f := range fields(g.docs, t, v, path) {
		ft := f.typ
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		// The section a list of objects opens is named with [].
		sub := f.path
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			sub += "[]"
		}
		if isSection(sub) {
			var et reflect.Type
			var ev reflect.Value
			if ft.Kind() == reflect.Slice {
				et, ev = ft.Elem(), elemValue(f.value)
			} else {
				et, ev = ft, f.value
			}
			walk(et, ev, sub)
			if path == "" {
				continue // the top level's sections have their own headings
			}
		} else if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[config.Secret]() && ft != reflect.TypeFor[config.Duration]() {
			g.rows(b, ft, f.value, f.path, prefix+f.key+".", walk)
			continue
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", prefix+f.key, cell(docType(f, ft)), cell(docDefault(f, ft)), cell(f.doc))
	}
}

// cell escapes a table cell: one line, "|" escaped.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// ticks turns 'x' in a doc tag into `x`.
var ticksRE = regexp.MustCompile(`'([^']*)'`)

func ticks(s string) string { return ticksRE.ReplaceAllString(s, "`$1`") }

func docType(f field, t reflect.Type) string {
	if s, ok := f.tag["doctype"]; ok {
		return ticks(s)
	}
	if e, ok := f.tag["enum"]; ok {
		return "`" + strings.ReplaceAll(e, "|", "` | `") + "`"
	}
	switch {
	case t == reflect.TypeFor[config.Duration]():
		return "duration"
	case t == reflect.TypeFor[config.Secret]():
		return "secret"
	}
	switch t.Kind() {
	case reflect.String:
		switch {
		case f.tag["ref"] == "header_name":
			return "header name"
		case f.tag["format"] == "uri":
			return "URL"
		}
		return "string"
	case reflect.Int, reflect.Uint32:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		if f.tag["items.ref"] == "host_port" {
			return "list of host:port"
		}
		return "list"
	case reflect.Map:
		return "map"
	}
	return "object"
}

func docDefault(f field, t reflect.Type) string {
	if s, ok := f.tag["docdefault"]; ok {
		return ticks(s)
	}
	if f.required {
		return "required"
	}
	switch {
	case t == reflect.TypeFor[config.Secret]():
		return "—"
	case t.Kind() == reflect.Struct && t != reflect.TypeFor[config.Duration]():
		return "see below"
	}
	switch dv := defaultValue(t, f.value).(type) {
	case string:
		if dv == "" {
			return "`\"\"`"
		}
		return "`" + dv + "`"
	case []any:
		var parts []string
		for _, x := range dv {
			parts = append(parts, fmt.Sprint(x))
		}
		return "`[" + strings.Join(parts, ", ") + "]`"
	case *obj:
		return "`{}`"
	default:
		return fmt.Sprintf("`%v`", dv)
	}
}
