package doclinks

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestPackageMapMatchesTree: the package map of docs/development.md names
// every directory of the tree that holds Go code (in any of the modules),
// and everything it names exists.
func TestPackageMapMatchesTree(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, "docs", "development.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := packageMap(string(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range listed {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir))); err != nil || !fi.IsDir() {
			t.Errorf("docs/development.md lists %s/, which is not a directory of the tree", dir)
		}
	}
	pkgs, err := goDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pkgs, "cmd/extauthz") || !slices.Contains(pkgs, "bench/cmd/extauthz-load") {
		t.Fatalf("the walk found %v, without the commands", pkgs)
	}
	for _, p := range pkgs {
		if !slices.Contains(listed, p) {
			t.Errorf("the package map of docs/development.md does not list %s/", p)
		}
	}
}

// TestPackageMapParsing: entries are the lines of the block that start
// with a path ending in '/'; continuation lines are not entries.
func TestPackageMapParsing(t *testing.T) {
	got, err := packageMap("# Dev\n\n```\nnot/ a map\n```\n\n## Package map\n\nprose\n\n```\npkg/a/   what a is\n                  more about a/ b/\npkg/long/name/\n                  what it is\nREADME.md not a dir\n```\n\n```\nother/ block\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"pkg/a", "pkg/long/name"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := packageMap("# Dev\n"); err == nil {
		t.Error("a page without a package map parsed")
	}
}

var mapEntryRE = regexp.MustCompile(`^([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)/(?:\s|$)`)

// packageMap returns the directories (without the trailing '/') that the
// first code block after the "## Package map" heading lists.
func packageMap(page string) ([]string, error) {
	_, after, ok := strings.Cut(page, "\n## Package map\n")
	if !ok {
		return nil, os.ErrNotExist
	}
	_, block, ok := strings.Cut(after, "\n```\n")
	if !ok {
		return nil, os.ErrNotExist
	}
	block, _, ok = strings.Cut(block, "\n```")
	if !ok {
		return nil, os.ErrNotExist
	}
	var dirs []string
	for _, l := range strings.Split(block, "\n") {
		if m := mapEntryRE.FindStringSubmatch(l); m != nil {
			dirs = append(dirs, m[1])
		}
	}
	return dirs, nil
}

// goDirs returns every directory under root holding a .go file, relative
// with forward slashes, leaving out testdata, node_modules and hidden
// directories (the go tool ignores them too).
func goDirs(root string) ([]string, error) {
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs, err
}
