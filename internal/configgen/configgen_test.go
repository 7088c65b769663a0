package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedFilesUpToDate regenerates every file in memory and fails,
// showing where, when the checked-in copy differs: run
// `go generate ./pkg/config/` (or `make generate`) after changing
// pkg/config's types, tags or defaults.
func TestGeneratedFilesUpToDate(t *testing.T) {
	out, err := Generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range out {
		got, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; run `go generate ./pkg/config/`:\n%s", name, lineDiff(string(got), string(want)))
		}
	}
}

// lineDiff shows the first differing region of two texts, with three
// lines of context: "-" the checked-in line, "+" the generated one.
func lineDiff(got, want string) string {
	a, b := strings.Split(got, "\n"), strings.Split(want, "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	ea, eb := len(a), len(b)
	for ea > i && eb > i && a[ea-1] == b[eb-1] {
		ea--
		eb--
	}
	var sb strings.Builder
	for k := max(0, i-3); k < i; k++ {
		fmt.Fprintf(&sb, "  %d  %s\n", k+1, a[k])
	}
	for k := i; k < ea && k < i+40; k++ {
		fmt.Fprintf(&sb, "- %d  %s\n", k+1, a[k])
	}
	for k := i; k < eb && k < i+40; k++ {
		fmt.Fprintf(&sb, "+ %d  %s\n", k+1, b[k])
	}
	return sb.String()
}

func TestLineDiff(t *testing.T) {
	d := lineDiff("a\nb\nc\nd\n", "a\nb\nX\nd\n")
	if !strings.Contains(d, "- 3  c") || !strings.Contains(d, "+ 3  X") || strings.Contains(d, "- 4") {
		t.Errorf("diff:\n%s", d)
	}
}

// TestTagsReachTheSchema changes nothing on disk: it checks that a
// constraint written only as a tag in pkg/config is in the generated schema,
// so that the generator cannot silently drop tags.
func TestTagsReachTheSchema(t *testing.T) {
	s, err := Schema("../../pkg/config")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"enum": [` + "\n" + `        "deny",`,
		`"maximum": 1023`,
		`"required": [` + "\n" + `    "resources"`,
		`"not": {`,
	} {
		if !strings.Contains(string(s), want) {
			t.Errorf("generated schema lacks %q", want)
		}
	}
}

// TestReferenceNeedsEveryRegion: a page that lost a generated region, or
// names a section the types do not have, is an error, not a silent skip.
func TestReferenceNeedsEveryRegion(t *testing.T) {
	page, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	lost := strings.Replace(string(page), "<!-- configgen:begin jwks -->", "", 1)
	if _, err := Reference("../../pkg/config", []byte(lost)); err == nil || !strings.Contains(err.Error(), `"jwks"`) {
		t.Errorf("a page without the jwks region: err = %v", err)
	}
	unknown := string(page) + "\n<!-- configgen:begin nosuch -->\n<!-- configgen:end -->\n"
	if _, err := Reference("../../pkg/config", []byte(unknown)); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("a page with an unknown region: err = %v", err)
	}
}
