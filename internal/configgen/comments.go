package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
)

// docs holds the doc comments of pkg/config's types and struct fields,
// read from its source: types["Resource"] and fields["Resource.Name"].
type docs struct {
	types  map[string]string
	fields map[string]string
}

// readDocs parses the non-test Go files of dir. A field's text is its doc
// comment, else its line comment; a field with neither that directly
// follows another in the same declaration group (no blank line between)
// shares that field's comment ("CertFile and KeyFile are ...").
func readDocs(dir string) (*docs, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	d := &docs{types: map[string]string{}, fields: map[string]string{}}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil {
					doc = gd.Doc
				}
				d.types[ts.Name.Name] = doc.Text()
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				prev, prevLine := "", -10
				for _, fld := range st.Fields.List {
					text := fld.Doc.Text()
					if text == "" {
						text = fld.Comment.Text()
					}
					line := fset.Position(fld.Pos()).Line
					if text == "" && line == prevLine+1 {
						text = prev
					}
					for _, n := range fld.Names {
						d.fields[ts.Name.Name+"."+n.Name] = text
					}
					prev, prevLine = text, fset.Position(fld.End()).Line
				}
			}
		}
	}
	return d, nil
}

// oneLine joins a comment's lines into one paragraph per blank-line
// separated block, the blocks joined by a blank line.
func oneLine(s string) string {
	var paras []string
	for p := range strings.SplitSeq(strings.TrimSpace(s), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}
