package config

// api/config.schema.json and the reference tables of docs/configuration.md
// are generated from the types in this package: yaml tags name the keys,
// doc comments describe them, schema tags (and pattern, itemPattern) state
// the constraints on one key, and ApplyDefaults gives the defaults. The
// schema tag holds comma-separated entries: required, nodefault (the
// default depends on other keys), unique, min=N, max=N, minItems=N,
// minLength=N, enum=a|b, format=F, ref=NAME (a named string shape of the
// generator: host_port, header_name, method, scope); "items." applies an
// entry to a list's items or a map's values. ParseSchemaTag reads these
// tags for the generator and for Validate, which enforces the bounds,
// enums, required strings, minLength and unique entries from them
// (tagcheck.go); cross-field rules, and rules stricter than the schema
// can state, stay in the validate_*.go files. internal/configgen's test
// fails when the files are stale.
//go:generate go run ../../internal/configgen
