// Package config reads, defaults and validates the extauthz policy file: the
// listeners, caches, token rules and protected resources that an operator
// writes in YAML. Parse is exactly what `extauthz check-config FILE` runs.
//
// It is for turning bytes into a Config that is known to be valid, with
// every problem reported at once and named by its key path. It is not for
// process settings (flags and environment variables belong to cmd/extauthz),
// and not for watching files or reloading: the caller swaps in a new *Config
// only when Load returns no error. A Secret only names where a secret lives;
// Parse and Validate never read one, the caller does with Secret.Resolve.
//
// The package is long (about 3,400 lines) because it is the one source of
// the configuration: the doc comments of types.go are the reference that
// go generate writes into api/config.schema.json and docs/configuration.md,
// and every key's checks (validate_*.go, one file per section) name it by its
// path. Splitting it would split a key from its checks.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem with one key of the configuration.
type Error struct {
	// Path names the key, as in resources[0].authorization_servers[1].issuer;
	// empty when the problem concerns the file as a whole.
	Path string
	// Line is the 1-based line of the offending YAML for problems found while
	// decoding (unknown keys, wrong types), and 0 for problems found by
	// Validate, which sees values rather than text.
	Line int
	// Msg says what is wrong, in lower case.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Errors is every problem found in one configuration, in file order when it
// came from Parse. Its text is one "path: message" per line, which is what
// check-config prints.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Load reads the file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the config file
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes one YAML document strictly (an unknown key or a value of the
// wrong type is an error), applies defaults, and validates. On failure it
// returns nil and an Errors listing every problem in file order; a YAML
// syntax error is returned as yaml.v3 reports it, since nothing can be
// decoded past it.
//
// A key that is written keeps its value, even a zero one ("negative_ttl:
// 0s" disables negative caching, "leeway: 0s" means no leeway); a key that
// is omitted, or written with no value, takes its default.
//
// String values may reference environment variables as ${NAME} (see
// expand.go); Parse reads them from the process environment.
func Parse(data []byte) (*Config, error) {
	return ParseEnv(data, os.LookupEnv)
}

// ParseEnv is Parse with the environment read through env.
func ParseEnv(data []byte, env LookupFunc) (*Config, error) {
	root, err := document(data)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	d := newDecoder(env)
	if root != nil {
		d.decode(root, reflect.ValueOf(c).Elem(), "")
	}
	if d.fatal != nil {
		return nil, Errors{d.fatal}
	}
	c.written = d.written
	c.ApplyDefaults()

	all := d.errs
	verrs, _ := c.Validate().(Errors) // nil or Errors, never another type
	for _, e := range verrs {
		if coveredBy(e.Path, d.bad) {
			// Already reported as undecodable: the zero value left
			// behind would only produce a second, misleading message.
			continue
		}
		all = append(all, located{err: e, pos: d.position(e.Path)})
	}
	if len(all) == 0 {
		return c, nil
	}
	slices.SortStableFunc(all, func(a, b located) int {
		if a.pos.line != b.pos.line {
			return a.pos.line - b.pos.line
		}
		return a.pos.col - b.pos.col
	})
	out := make(Errors, len(all))
	for i, l := range all {
		out[i] = l.err
	}
	return nil, out
}

// document parses data into its single YAML document's root node; nil for
// an empty file, which then fails validation for having no resources.
func document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		// A second document would be silently ignored by a plain
		// yaml.Unmarshal: an operator who appended a policy after "---"
		// must learn that it is not in effect. A stray trailing "---" is
		// harmless and allowed.
		if n := content(&extra); n != nil {
			return nil, Errors{{Msg: "the file must hold exactly one YAML document", Line: n.Line}}
		}
	}
	return content(&doc), nil
}

// content returns a document's root node, or nil when the document is empty.
func content(doc *yaml.Node) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return nil
	}
	return n
}

// position returns where path, or its nearest written ancestor, appears in
// the file. Keys that appear nowhere (a missing required top-level key)
// sort after everything else.
func (d *decoder) position(path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := d.pos[p]; ok {
			return pos
		}
	}
	return position{line: int(^uint(0) >> 1)}
}

// parentPath strips the last ".key" or "[i]" from a key path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// coveredBy reports whether path is one of bad or lies beneath one of them.
func coveredBy(path string, bad []string) bool {
	for _, b := range bad {
		if path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
			return true
		}
	}
	return false
}
