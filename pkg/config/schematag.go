package config

import (
	"reflect"
	"strings"
)

// SchemaTag is a field's constraints as its struct tags state them: the
// entries of its schema:"..." tag (bare, such as required, or key=value,
// such as min=1 and items.enum=a|b), its pattern and itemPattern tags (as
// pattern and items.pattern), and its doctype and docdefault tags.
// internal/configgen writes the JSON Schema from it and Validate enforces
// it (checkTags), so both read the tags through this one parser.
type SchemaTag map[string]string

// ParseSchemaTag returns the SchemaTag of struct field f.
func ParseSchemaTag(f reflect.StructField) SchemaTag {
	t := SchemaTag{}
	for part := range strings.SplitSeq(f.Tag.Get("schema"), ",") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		t[k] = v
	}
	if p := f.Tag.Get("pattern"); p != "" {
		t["pattern"] = p
	}
	if p := f.Tag.Get("itemPattern"); p != "" {
		t["items.pattern"] = p
	}
	for _, k := range []string{"doctype", "docdefault"} {
		if s, ok := f.Tag.Lookup(k); ok {
			t[k] = s
		}
	}
	return t
}

// YAMLKey is the key that struct field f is written under in the file.
func YAMLKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return k
}
