package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestREADMEShowsTheNginxConfigTheSuiteRuns: what an operator copies from the
// README's HTTP authorization mode section is exactly what the end-to-end
// suite runs nginx with — the two include files whole, and the locations
// the protected resource needs.
func TestREADMEShowsTheNginxConfigTheSuiteRuns(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```nginx\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		blocks = append(blocks, m[1])
	}
	shown := func(what, text string) {
		t.Helper()
		for _, b := range blocks {
			if b == text {
				return
			}
		}
		t.Errorf("the README shows no nginx block equal to the suite's %s:\n%s", what, text)
	}
	shown("mcp_auth.conf", mcpAuthConf)
	shown("extauthz_subrequest.conf", extauthzSubrequestConf)

	// The server block's locations: each README location must be one the
	// suite's nginx.conf has, line for line (the suite's adds more
	// resources and the catch-all).
	conf := nginxConfig("/dir", 1, "gw", "up", "up2")
	var server string
	for _, b := range blocks {
		if strings.Contains(b, "location /mcp {") {
			server = b
		}
	}
	if server == "" {
		t.Fatal("the README shows no nginx block with the /mcp location")
	}
	// The http block's map that tells preflights apart, likewise.
	maps := 0
	for _, b := range blocks {
		if strings.HasPrefix(b, "map ") {
			maps++
			if indented := regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimSuffix(b, "\n"), "    "); !strings.Contains(conf, indented) {
				t.Errorf("the README's map is not in the suite's nginx.conf:\n%s", b)
			}
		}
	}
	if maps == 0 {
		t.Error("the README shows no nginx map block for the preflights")
	}
	for _, loc := range regexp.MustCompile(`(?ms)^location [^\n]*\{\n.*?^\}\n`).FindAllString(server, -1) {
		indented := regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimSuffix(loc, "\n"), "        ")
		if !strings.Contains(conf, indented) {
			t.Errorf("the README's location is not in the suite's nginx.conf:\n%s", loc)
		}
	}
}
