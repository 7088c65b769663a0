// Command configgen writes api/config.schema.json and the reference tables
// of docs/configuration.md from pkg/config's Go types: their yaml tags name
// the keys, their doc comments describe them, their schema tags (and
// pattern, itemPattern) state single-key constraints, and ApplyDefaults on
// a minimal file gives the defaults. Run it with `go generate ./pkg/config/`
// (or `make generate`); a test fails when the checked-in files differ from
// what it writes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root := flag.String("root", "../..", "the repository root (go generate runs in pkg/config)")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "configgen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	out, err := Generate(root)
	if err != nil {
		return err
	}
	for name, data := range out {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil { //nolint:gosec // checked-in files, readable like the rest of the tree
			return err
		}
	}
	return nil
}

// Generate returns each generated file's path (relative to root) and content.
func Generate(root string) (map[string][]byte, error) {
	schema, err := Schema(filepath.Join(root, "pkg/config"))
	if err != nil {
		return nil, err
	}
	ref, err := os.ReadFile(filepath.Join(root, "docs/configuration.md")) //nolint:gosec // the repository's own page
	if err != nil {
		return nil, err
	}
	doc, err := Reference(filepath.Join(root, "pkg/config"), ref)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{"api/config.schema.json": schema, "docs/configuration.md": doc}, nil
}
