package doclinks

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestLinksResolve: every relative link of the published pages resolves,
// and every page of docs/ is reachable from the README.
func TestLinksResolve(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pages, err := publishedPages(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"README.md", "SECURITY.md", "docs/conformance.md", "docs/configuration.md", "docs/operating.md"} {
		if !slices.Contains(pages, p) {
			t.Errorf("%s is not among the checked pages %v", p, pages)
		}
	}
	for _, problem := range checkLinks(root, pages) {
		t.Error(problem)
	}

	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, l := range links(string(readme)) {
		path, _, _ := strings.Cut(l.target, "#")
		linked[filepath.ToSlash(filepath.Clean(path))] = true
	}
	for _, p := range pages {
		if strings.HasPrefix(p, "docs/") && !linked[p] {
			t.Errorf("README.md links to no %s: every docs page must be reachable from the README", p)
		}
	}
}

// TestCheckerFindsBrokenLinks: the checker reports each kind of broken link
// and accepts the forms that resolve, on pages written for the test.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", strings.Join([]string{
		"# Title",
		"## Same",
		"## Same",
		"## HTTP mode (nginx, `http_service`)",
		"[ok](docs/a.md) [ok](docs/a.md#a-heading) [ok](#same-1) [ok](#http-mode-nginx-http_service)",
		"[ok](https://example.com/x#y) [ok](mailto:a@example.com) [ok](pkg/) [ok](pkg/x.go#L3)",
		"[gone](docs/missing.md)",            // line 7
		"[no anchor](docs/a.md#no-such)",     // line 8
		"[no anchor here](#same-2)",          // line 9
		"[outside](../etc/passwd)",           // line 10
		"[anchor in code](pkg/x.go#section)", // line 11
		"`[not a link](nowhere.md)`",
		"```",
		"[not a link](nowhere.md)",
		"## Not a heading",
		"```",
		"[the fenced heading](#not-a-heading)", // line 17
	}, "\n"))
	write("docs/a.md", "# A heading\n[back](../README.md#title) [broken](../README.md#nope)\n")
	write("pkg/x.go", "package x\n")

	got := checkLinks(root, []string{"README.md", "docs/a.md"})
	want := []string{
		"README.md:7: docs/missing.md: no such file",
		"README.md:8: docs/a.md#no-such: docs/a.md has no heading with the anchor #no-such",
		"README.md:9: #same-2: README.md has no heading with the anchor #same-2",
		"README.md:10: ../etc/passwd: outside the repository",
		"README.md:11: pkg/x.go#section: an anchor into a file that is not Markdown",
		"README.md:17: #not-a-heading: README.md has no heading with the anchor #not-a-heading",
		"docs/a.md:2: ../README.md#nope: README.md has no heading with the anchor #nope",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAnchor: GitHub's heading anchors — lower case, spaces to '-', every
// punctuation character dropped but '-' and '_', inline markup rendered.
func TestAnchor(t *testing.T) {
	for _, c := range []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"HTTP authorization mode (nginx, Traefik, Caddy, Envoy `http_service`)", "http-authorization-mode-nginx-traefik-caddy-envoy-http_service"},
		{"`resources[]` (at least one)", "resources-at-least-one"},
		{"`resources[].public[]`", "resourcespublic"},
		{"`cache.redis`", "cacheredis"},
		{"Policies (CEL)", "policies-cel"},
		{"A protected MCP server on your machine (docker compose)", "a-protected-mcp-server-on-your-machine-docker-compose"},
		{"See [the chart](helm/README.md) now", "see-the-chart-now"},
		{"**Bold** and _em_ x_y", "bold-and-em-x_y"},
		{"Ünïcode letters stay", "ünïcode-letters-stay"},
		{"Two  spaces", "two--spaces"},
	} {
		if got := anchor(c.heading); got != c.want {
			t.Errorf("anchor(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

// publishedPages lists the pages whose links are checked, relative to root
// with forward slashes: README.md, SECURITY.md, the Helm chart's README and
// docs/*.md.
func publishedPages(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no docs/*.md under %s", root)
	}
	pages := []string{"README.md", "SECURITY.md", "helm/extauthz/README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		pages = append(pages, filepath.ToSlash(rel))
	}
	return pages, nil
}

// checkLinks returns one line per broken link of the pages (paths relative
// to root): "page:line: target: what is wrong".
func checkLinks(root string, pages []string) []string {
	var problems []string
	anchors := map[string]map[string]bool{} // page (relative, slash) → its anchors
	anchorsOf := func(page string) (map[string]bool, error) {
		if a, ok := anchors[page]; ok {
			return a, nil
		}
		text, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			return nil, err
		}
		a := headingAnchors(string(text))
		anchors[page] = a
		return a, nil
	}
	for _, page := range pages {
		text, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", page, err))
			continue
		}
		for _, l := range links(string(text)) {
			report := func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf("%s:%d: %s: ", page, l.line, l.target)+fmt.Sprintf(format, args...))
			}
			if hasScheme(l.target) {
				continue // not checked: no network
			}
			rawPath, frag, _ := strings.Cut(l.target, "#")
			path, err := url.PathUnescape(rawPath)
			if err != nil {
				report("malformed path: %v", err)
				continue
			}
			target := page
			if path != "" {
				if strings.HasPrefix(path, "/") {
					report("an absolute path: links are relative to the page")
					continue
				}
				target = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(filepath.FromSlash(page)), filepath.FromSlash(path))))
				if target == ".." || strings.HasPrefix(target, "../") {
					report("outside the repository")
					continue
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(target))); err != nil {
					report("no such file")
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				if !regexp.MustCompile(`^L[0-9]+(-L[0-9]+)?$`).MatchString(frag) {
					report("an anchor into a file that is not Markdown")
				}
				continue
			}
			a, err := anchorsOf(target)
			if err != nil {
				report("%v", err)
				continue
			}
			if !a[frag] {
				report("%s has no heading with the anchor #%s", target, frag)
			}
		}
	}
	return problems
}

// link is one inline link or image of a page: its target as written and
// the line it is on (1-based).
type link struct {
	target string
	line   int
}

var (
	linkRE    = regexp.MustCompile(`\]\(\s*<?([^()\s<>]*)>?(?:\s+"[^"]*")?\s*\)`)
	refDefRE  = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	schemeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	htmlIDRE  = regexp.MustCompile(`<a\s[^>]*\b(?:id|name)="([^"]+)"`)
)

func hasScheme(target string) bool { return schemeRE.MatchString(target) }

// links returns the inline links, images and reference definitions of a
// page, outside fenced code blocks and code spans.
func links(text string) []link {
	prose := blankCode(text)
	var out []link
	for _, re := range []*regexp.Regexp{linkRE, refDefRE} {
		for _, m := range re.FindAllStringSubmatchIndex(prose, -1) {
			out = append(out, link{target: prose[m[2]:m[3]], line: 1 + strings.Count(prose[:m[2]], "\n")})
		}
	}
	slices.SortStableFunc(out, func(a, b link) int { return a.line - b.line })
	return out
}

// blankCode replaces the content of fenced code blocks and of code spans by
// spaces, keeping every newline, so that what is left is the prose and
// offsets still give line numbers.
func blankCode(text string) string {
	lines := strings.SplitAfter(text, "\n")
	fence := ""
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, " ")
		if fence == "" {
			if f := fenceOf(trimmed); f != "" && len(l)-len(trimmed) <= 3 {
				fence = f
				lines[i] = blank(l)
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
			fence = ""
		}
		lines[i] = blank(l)
	}
	b := []byte(strings.Join(lines, ""))
	// Code spans: a run of n backticks up to the next run of exactly n.
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := runLen(b, i)
		end := -1
		for j := i + n; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			m := runLen(b, j)
			if m == n {
				end = j
				break
			}
			j += m
		}
		if end < 0 {
			i += n
			continue
		}
		for k := i; k < end+n; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		i = end + n
	}
	return string(b)
}

// fenceOf returns the fence a line opens (three or more ` or ~), or "".
func fenceOf(line string) string {
	for _, c := range []string{"`", "~"} {
		n := len(line) - len(strings.TrimLeft(line, c))
		if n >= 3 {
			return strings.Repeat(c, n)
		}
	}
	return ""
}

func runLen(b []byte, i int) int {
	n := 0
	for i+n < len(b) && b[i+n] == '`' {
		n++
	}
	return n
}

func blank(line string) string {
	if strings.HasSuffix(line, "\n") {
		return strings.Repeat(" ", len(line)-1) + "\n"
	}
	return strings.Repeat(" ", len(line))
}

// headingAnchors returns the anchors GitHub gives the page's ATX headings
// (a repeated one gets -1, -2, …) and its HTML id and name attributes.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := strings.Split(blankCode(text), "\n")
	for i, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(fenced[i]) == "" {
			continue // blank, or inside a fence
		}
		for _, m := range htmlIDRE.FindAllStringSubmatch(fenced[i], -1) {
			out[m[1]] = true
		}
		m := headingRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		a := anchor(m[2])
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

var inlineLinkRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)

// anchor is GitHub's anchor for a heading: the heading's text as rendered
// (a link's text, no code or emphasis markers), lower-cased, every
// character that is not a letter, a digit, a space, '-' or '_' dropped, and
// each space made a '-'.
func anchor(heading string) string {
	text := inlineLinkRE.ReplaceAllString(heading, "$1")
	text = strings.NewReplacer("**", "", "__", "").Replace(text)
	text = regexp.MustCompile(`(^|[^\w])_([^_]+)_([^\w]|$)`).ReplaceAllString(text, "$1$2$3")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
