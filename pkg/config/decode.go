package config

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxDecodedNodes bounds the work of expanding YAML aliases. The config
// shape nests lists only two deep, so expansion is polynomial at worst, but
// a hostile or generated file should still fail fast rather than spin.
const maxDecodedNodes = 1_000_000

// position is where a node sits in the file, used to report problems in
// file order.
type position struct{ line, col int }

// located is a problem together with where it was found, for sorting.
type located struct {
	err *Error
	pos position
}

// decoder fills a Go value from a yaml.Node tree by reflection over the yaml
// struct tags. It exists because yaml.v3's strict mode (KnownFields) stops at
// the first problem and names no key path; here every unknown key and every
// wrongly typed value is reported with its full path, and the keys that were
// written are remembered so that defaults never overwrite an explicit value.
type decoder struct {
	errs    []located
	pos     map[string]position // every key or list element seen, by path
	written map[string]bool     // paths whose value was present and not null
	bad     []string            // paths whose value could not be decoded
	fatal   *Error              // a problem after which nothing else is worth reporting
	env     LookupFunc          // reads the variables that ${NAME} references name
	active  map[*yaml.Node]bool // anchors being expanded, to stop self-reference
	merging map[*yaml.Node]bool // mappings being merged, likewise for "<<"
	nodes   int
}

func newDecoder(env LookupFunc) *decoder {
	return &decoder{
		env:     env,
		pos:     map[string]position{},
		written: map[string]bool{},
		active:  map[*yaml.Node]bool{},
		merging: map[*yaml.Node]bool{},
	}
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, located{
		err: &Error{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)},
		pos: position{n.Line, n.Column},
	})
}

// failValue reports a value that cannot be decoded and remembers its path so
// that validation does not report the same key a second time.
func (d *decoder) failValue(path string, n *yaml.Node, format string, args ...any) {
	d.fail(path, n, format, args...)
	d.bad = append(d.bad, path)
}

// decode stores n into v (which must be addressable). path names v.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.nodes++
	if d.nodes > maxDecodedNodes {
		if d.fatal == nil {
			d.fatal = &Error{Msg: "the document is too large once its aliases are expanded", Line: n.Line}
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		// The yaml parser allows an alias inside its own anchor. The config
		// types are not recursive, so such a cycle meets a type error
		// first today; this guard keeps a future recursive type finite.
		target := n.Alias
		if target == nil || d.active[target] {
			d.failValue(path, n, "alias refers to the value that contains it")
			return
		}
		d.active[target] = true
		defer delete(d.active, target)
		d.decode(target, v, path)
		return
	}
	// A key written with no value (or ~, null) is treated as omitted, as
	// yaml.v3 does: commenting out every child of a block leaves "cache:",
	// which must mean "all defaults", not an error.
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.Contains(n.Value, "${") {
		// Environment references (expand.go), in a copy: an anchored
		// node may be decoded again elsewhere.
		v, err := expand(n.Value, d.env)
		if err != nil {
			d.failValue(path, n, "%s", err.Error())
			return
		}
		if v == "" {
			return // as if omitted: the default applies
		}
		c := *n
		c.Value = v
		n = &c
	}
	if path != "" {
		d.written[path] = true
	}

	// Types that decode themselves (Duration) keep their own rules and
	// messages; the path and line are added here.
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			d.failValue(path, n, "%s", err.Error())
		}
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		before := len(d.bad)
		d.decode(n, elem.Elem(), path)
		if len(d.bad) == before {
			v.Set(elem)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.failValue(path, n, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = position{item.Line, item.Column}
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			// Only strings are taken as strings: a bare 1.10 would
			// otherwise silently become "1.1", and yes/no/on/off are
			// traps. Quoting makes the intent explicit.
			d.failValue(path, n, "must be a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.failValue(path, n, "must be true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.failValue(path, n, "must be an integer")
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil ||
			math.IsNaN(f) || math.IsInf(f, 0) {
			d.failValue(path, n, "must be a number")
			return
		}
		v.SetFloat(f)
	case reflect.Uint32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.failValue(path, n, "must be an integer")
			return
		}
		if i < 0 || i > math.MaxUint32 {
			d.failValue(path, n, "must be an integer from 0 to %d", uint64(math.MaxUint32))
			return
		}
		v.SetUint(uint64(i))
	default:
		// Only reachable if types.go gains a field of a kind not handled
		// above; the tests decode every field, so this fails loudly there.
		d.failValue(path, n, "cannot be decoded into Go type %s", v.Type())
	}
}

// decodeMap decodes a mapping with string keys (scope_implications). An
// entry's path is written path["key"], as keys may contain dots.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.failValue(path, n, "must be a mapping")
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.fail(path, k, "keys must be plain strings")
			continue
		}
		kp := fmt.Sprintf("%s[%q]", path, k.Value)
		if line, dup := first[k.Value]; dup {
			d.fail(kp, k, "duplicate key, first written on line %d", line)
			continue
		}
		first[k.Value] = k.Line
		d.pos[kp] = position{val.Line, val.Column}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, kp)
		m.SetMapIndex(reflect.ValueOf(k.Value), elem)
	}
	v.Set(m)
}

// yamlFields maps each YAML key of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
	}
	return fields
}

type pair struct{ key, value *yaml.Node }

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.fatal = &Error{Msg: "the file must be a YAML mapping of keys such as listen, cache and resources", Line: n.Line}
		} else {
			d.failValue(path, n, "must be a mapping")
		}
		return
	}
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		kp := key
		if path != "" {
			kp = path + "." + key
		}
		d.pos[kp] = position{p.key.Line, p.key.Column}
		i, ok := fields[key]
		if !ok {
			d.fail(kp, p.key, "unknown key")
			continue
		}
		d.decode(p.value, v.Field(i), kp)
	}
}

// pairs lists the key/value pairs of a mapping, expanding YAML merge keys
// ("<<: *anchor"): explicit keys win over merged ones, and among merged
// mappings the first listed wins, as the merge-key spec says. Duplicate
// explicit keys are reported; yaml.v3 only detects them when decoding into
// Go values, which this decoder replaces.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	if d.merging[n] {
		d.fail(path, n, "merge key (<<) refers to the mapping that contains it")
		return nil
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	var own, merged []pair
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merged = append(merged, d.mergeSources(val, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "keys must be plain strings")
			continue
		}
		if prev, dup := first[k.Value]; dup {
			kp := k.Value
			if path != "" {
				kp = path + "." + k.Value
			}
			d.fail(kp, k, "duplicate key, first written on line %d", prev.Line)
			continue
		}
		first[k.Value] = k
		own = append(own, pair{k, val})
	}
	for _, p := range merged {
		if _, dup := first[p.key.Value]; dup {
			continue
		}
		first[p.key.Value] = p.key
		own = append(own, p)
	}
	return own
}

func (d *decoder) mergeSources(n *yaml.Node, path string) []pair {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return d.pairs(n, path)
	case yaml.SequenceNode:
		var out []pair
		for _, m := range n.Content {
			for m.Kind == yaml.AliasNode && m.Alias != nil {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				d.fail(path, m, "a merge key (<<) must refer to a mapping or a list of mappings")
				continue
			}
			out = append(out, d.pairs(m, path)...)
		}
		return out
	default:
		d.fail(path, n, "a merge key (<<) must refer to a mapping or a list of mappings")
		return nil
	}
}

// isMergeKey matches yaml.v3's own test, so a quoted "<<" stays a plain key.
func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" &&
		(n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}
