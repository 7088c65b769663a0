package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestDocsShowTheProxyConfigsTheSuiteRuns: what an operator copies from the HTTP
// authorization mode section of docs/operating.md is, byte for byte, a file of deploy/ that
// the end-to-end suite runs (with only its addresses changed).
func TestDocsShowTheProxyConfigsTheSuiteRuns(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "docs", "operating.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ lang, file string }{
		{"nginx", nginxConfPath},
		{"caddyfile", caddyConfPath},
	} {
		file := string(readFile(t, filepath.Join(root, c.file)))
		found := false
		for _, m := range regexp.MustCompile("(?s)```"+c.lang+"\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
			found = found || m[1] == file
		}
		if !found {
			t.Errorf("docs/operating.md shows no %s block equal to %s; paste the file into it", c.lang, c.file)
		}
	}
}
