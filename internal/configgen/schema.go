package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/config"
)

// obj is a JSON object that keeps its keys in the order they were set.
type obj struct {
	keys []string
	vals map[string]any
}

func newObj() *obj { return &obj{vals: map[string]any{}} }

func (o *obj) set(k string, v any) *obj {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

func (o *obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping ("<" stays "<").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// A stringDef is a named string shape, referred to by ref=NAME in a
// field's schema tag (or by type, for Duration).
type stringDef struct{ name, description, pattern string }

var stringDefs = []stringDef{
	{"duration", `A Go duration string such as "30s", "5m" or "1h30m". A bare number is refused: it would silently mean nanoseconds.`,
		`^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`},
	{"host_port", "A network address, host:port, with a host name or IP address (IPv6 in brackets) and a port from 1 to 65535.",
		`^([^:\[\]]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$`},
	{"header_name", "An HTTP header field name (RFC 9110 token characters).", "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
	{"method", "An HTTP request method, upper case as sent (RFC 9110 token characters).", "^[A-Z0-9!#$%&'*+.^_`|~-]+$"},
	{"scope", "An OAuth scope-token (RFC 6749 section 3.3): printable ASCII without spaces, double quotes or backslashes.",
		`^[!#-\[\]-~]+$`},
}

// structDefs are the struct types written once under $defs and referred
// to wherever they appear.
var structDefs = []struct {
	typ  reflect.Type
	name string
}{
	{reflect.TypeFor[config.Secret](), "secret"},
	{reflect.TypeFor[config.Resource](), "resource"},
	{reflect.TypeFor[config.PublicPath](), "public_path"},
	{reflect.TypeFor[config.Rule](), "rule"},
	{reflect.TypeFor[config.AuthorizationServer](), "authorization_server"},
}

func defName(t reflect.Type) string {
	if t == reflect.TypeFor[config.Duration]() {
		return "duration"
	}
	for _, d := range structDefs {
		if d.typ == t {
			return d.name
		}
	}
	return ""
}

const (
	schemaTitle       = "extauthz policy file"
	schemaDescription = "The YAML policy file read by `extauthz serve` and checked by `extauthz check-config FILE`. Unknown keys are errors. A key that is omitted or written with no value takes its default; a key that is written keeps its value, even a zero one. Cross-field rules (unique names, required_scopes within scopes_supported, one jwks_uri per issuer, no two resources with the same hosts and path_prefix, http only for loopback hosts) are enforced by check-config, not by this schema."
)

// tag is a field's parsed tags, read by the parser Validate uses too.
type tag = config.SchemaTag

// field is one key of the configuration as the generator sees it.
type field struct {
	key      string // YAML key
	path     string // key path: cache.redis.timeout, resources[].name
	goName   string // Type.Field
	doc      string // the doc comment, one paragraph per block
	tag      tag
	typ      reflect.Type
	value    reflect.Value // its value after ApplyDefaults
	required bool
}

// fields lists the YAML keys of struct type t, with their values in v.
func fields(d *docs, t reflect.Type, v reflect.Value, path string) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key := config.YAMLKey(sf)
		p := key
		if path != "" {
			p = path + "." + key
		}
		tg := config.ParseSchemaTag(sf)
		_, req := tg["required"]
		out = append(out, field{key: key, path: p, goName: t.Name() + "." + sf.Name, doc: oneLine(d.fields[t.Name()+"."+sf.Name]),
			tag: tg, typ: sf.Type, value: v.Field(i), required: req})
	}
	return out
}

// elemValue is a sample element of slice v: its first, or a zero one.
func elemValue(v reflect.Value) reflect.Value {
	if v.Len() > 0 {
		return v.Index(0)
	}
	return reflect.New(v.Type().Elem()).Elem()
}

// sample is the configuration the defaults are read from: only what is
// required, one rule with nothing written, then ApplyDefaults.
func sample() (*config.Config, error) {
	c, err := config.Parse([]byte(`
resources:
  - name: mcp
    resource: "https://mcp.example.com/mcp"
    authorization_servers: [{issuer: "https://auth.example.com"}]
`))
	if err != nil {
		return nil, err
	}
	c.Resources[0].Rules = []config.Rule{{}}
	c.SSF.Transmitters = []config.SSFTransmitter{{}}
	c.ApplyDefaults()
	return c, nil
}

type generator struct {
	docs *docs
	defs map[string]*obj
}

// Schema returns api/config.schema.json for the package in dir.
func Schema(dir string) ([]byte, error) {
	d, err := readDocs(dir)
	if err != nil {
		return nil, err
	}
	c, err := sample()
	if err != nil {
		return nil, err
	}
	g := &generator{docs: d, defs: map[string]*obj{}}
	root := newObj().
		set("$schema", "https://json-schema.org/draft/2020-12/schema").
		set("$id", "https://github.com/extauthz/extauthz/api/config.schema.json").
		set("title", schemaTitle).
		set("description", schemaDescription)
	g.object(root, reflect.TypeFor[config.Config](), reflect.ValueOf(c).Elem(), "")
	defs := newObj()
	for _, sd := range stringDefs {
		defs.set(sd.name, newObj().set("description", sd.description).set("type", "string").set("pattern", sd.pattern))
	}
	for _, sd := range structDefs {
		if o, ok := g.defs[sd.name]; ok {
			defs.set(sd.name, o)
		}
	}
	root.set("$defs", defs)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// object fills o with the schema of struct type t.
func (g *generator) object(o *obj, t reflect.Type, v reflect.Value, path string) {
	o.set("type", "object").set("additionalProperties", false)
	if t == reflect.TypeFor[config.Secret]() {
		// env and file are exclusive.
		o.set("not", newObj().set("required", []string{"env", "file"}))
	}
	props := newObj()
	var required []string
	for _, f := range fields(g.docs, t, v, path) {
		props.set(f.key, g.property(f))
		if f.required {
			required = append(required, f.key)
		}
	}
	if required != nil {
		o.set("required", required)
	}
	o.set("properties", props)
}

// property is the schema of one key.
func (g *generator) property(f field) *obj {
	p := newObj()
	t := f.typ
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if name := defName(t); name != "" {
		g.ensureDef(name, t, f.value)
		p.set("$ref", "#/$defs/"+name)
		p.set("description", plain(f.doc))
	} else if ref := f.tag["ref"]; ref != "" {
		p.set("$ref", "#/$defs/"+ref)
		p.set("description", plain(f.doc))
	} else {
		p.set("description", plain(f.doc))
		g.typeSchema(p, t, f.value, f.path, f.tag, "")
	}
	if _, no := f.tag["nodefault"]; !no && !f.required {
		p.set("default", defaultValue(t, f.value))
	}
	return p
}

func (g *generator) ensureDef(name string, t reflect.Type, v reflect.Value) {
	if name == "duration" {
		return
	}
	if _, ok := g.defs[name]; ok {
		return
	}
	o := newObj().set("description", typeDescription(t.Name(), g.docs.types[t.Name()]))
	g.defs[name] = o // before recursing: a type may refer to itself
	g.object(o, t, v, defPath(name))
}

// defPath is the key path that the fields of a $defs type are documented
// under.
func defPath(name string) string {
	switch name {
	case "resource":
		return "resources[]"
	case "rule":
		return "resources[].rules[]"
	case "public_path":
		return "resources[].public[]"
	case "authorization_server":
		return "resources[].authorization_servers[]"
	}
	return name
}

// typeSchema fills p with the type and constraints of a key of type t;
// prefix selects the tag keys that apply ("" for the key, "items." for
// its items).
func (g *generator) typeSchema(p *obj, t reflect.Type, v reflect.Value, path string, tg tag, prefix string) {
	num := func(k string) {
		if s, ok := tg[prefix+k]; ok {
			p.set(map[string]string{"min": "minimum", "max": "maximum", "minItems": "minItems", "minLength": "minLength"}[k], json.Number(s))
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		g.object(p, t, v, path)
		return
	case reflect.String:
		p.set("type", "string")
		if e, ok := tg[prefix+"enum"]; ok {
			p.set("enum", strings.Split(e, "|"))
		}
		if s, ok := tg[prefix+"pattern"]; ok {
			p.set("pattern", s)
		}
		if s, ok := tg[prefix+"format"]; ok {
			p.set("format", s)
		}
		num("minLength")
	case reflect.Int, reflect.Uint32:
		p.set("type", "integer")
		num("min")
		num("max")
	case reflect.Float64:
		p.set("type", "number")
		num("min")
		num("max")
	case reflect.Bool:
		p.set("type", "boolean")
	case reflect.Slice:
		p.set("type", "array")
		num("minItems")
		if _, ok := tg[prefix+"unique"]; ok {
			p.set("uniqueItems", true)
		}
		p.set("items", g.itemSchema(t.Elem(), elemValue(v), path+"[]", tg, prefix+"items."))
	case reflect.Map:
		p.set("type", "object")
		p.set("additionalProperties", g.itemSchema(t.Elem(), reflect.New(t.Elem()).Elem(), path+"{}", tg, prefix+"items."))
	default:
		panic(fmt.Sprintf("%s: Go kind %s has no schema", path, t.Kind()))
	}
}

func (g *generator) itemSchema(t reflect.Type, v reflect.Value, path string, tg tag, prefix string) *obj {
	if name := defName(t); name != "" {
		g.ensureDef(name, t, v)
		return newObj().set("$ref", "#/$defs/"+name)
	}
	if ref := tg[prefix+"ref"]; ref != "" {
		return newObj().set("$ref", "#/$defs/"+ref)
	}
	o := newObj()
	g.typeSchema(o, t, v, path, tg, prefix)
	return o
}

// defaultValue is the JSON form of v, the value ApplyDefaults left in an
// unwritten key. Objects are {} ("every key takes its default"), lists
// of objects [].
func defaultValue(t reflect.Type, v reflect.Value) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch {
	case t == reflect.TypeFor[config.Duration]():
		return formatDuration(v.Interface().(config.Duration).D())
	case t.Kind() == reflect.Struct, t.Kind() == reflect.Map:
		return newObj()
	case t.Kind() == reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return []any{}
		}
		out := []any{}
		for i := range v.Len() {
			out = append(out, v.Index(i).Interface())
		}
		return out
	}
	return v.Interface()
}

// formatDuration writes d as an operator would: 5m, 1h, 25ms, 0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// typeDescription is a type's doc comment for operators: "Resource is one
// protected resource" becomes "One protected resource".
func typeDescription(name, doc string) string {
	d := oneLine(doc)
	if rest, ok := strings.CutPrefix(d, name+" is "); ok && rest != "" {
		d = strings.ToUpper(rest[:1]) + rest[1:]
	}
	return d
}

var linkRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// plain is a doc comment without its Markdown: links become their text,
// and code and emphasis marks go.
func plain(s string) string {
	s = linkRE.ReplaceAllString(s, "$1")
	s = strings.ReplaceAll(s, "**", "")
	s = strings.ReplaceAll(s, "`", "")
	return strings.ReplaceAll(s, "\n\n", " ")
}
