// Package deploy_test checks the container packaging that cannot be built
// here (no Docker engine on the development and CI machines): the
// Dockerfiles are parsed and their properties asserted, the build context's
// .dockerignore is matched against what the builds copy, and
// docker-compose.yaml is loaded strictly with compose-go and cross-checked
// with the gateway config, the Envoy bootstrap and the authorization
// server's configuration it wires together.
package deploy_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const root = ".."

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
	Line int
}

// stage is one FROM and the instructions after it.
type stage struct {
	From  instruction
	Image string // the FROM image, build args not expanded
	Name  string // AS name
	Insts []instruction
}

// parseDockerfile reads a Dockerfile into its global ARGs and stages:
// comments and blank lines are skipped, "\" continues a line.
func parseDockerfile(t *testing.T, path string) (globals []instruction, stages []stage) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var insts []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		insts = append(insts, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	if cur.Len() != 0 {
		t.Fatalf("%s: a continued line never ends", path)
	}
	for _, in := range insts {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{From: in}
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					s.Image = w
					break
				}
			}
			if i := slices.IndexFunc(f, func(w string) bool { return strings.EqualFold(w, "AS") }); i >= 0 && i+1 < len(f) {
				s.Name = f[i+1]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("%s:%d: %s before the first FROM", path, in.Line, in.Cmd)
			}
			globals = append(globals, in)
			continue
		}
		stages[len(stages)-1].Insts = append(stages[len(stages)-1].Insts, in)
	}
	return globals, stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Insts {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// argDefault returns the default of "ARG NAME=value" among insts.
func argDefault(insts []instruction, name string) (string, bool) {
	for _, in := range insts {
		if in.Cmd == "ARG" {
			if v, ok := strings.CutPrefix(in.Args, name+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.Args), &v); err != nil {
		t.Fatalf("line %d: %s %s is not in exec (JSON) form: a shell form needs a shell, which the image has not", in.Line, in.Cmd, in.Args)
	}
	return v
}

// pinned reports whether an image reference names a version: a tag other
// than latest (a build arg counts when its default is one), or a digest.
func pinned(ref string, args map[string]string) bool {
	for k, v := range args {
		ref = strings.ReplaceAll(ref, "${"+k+"}", v)
		ref = strings.ReplaceAll(ref, "$"+k, v)
	}
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") || strings.Contains(ref, "$") {
		return false
	}
	tag := ref[i+1:]
	return tag != "" && tag != "latest" && !strings.HasSuffix(tag, "-latest") && regexp.MustCompile(`\d`).MatchString(tag)
}

func TestDockerfile(t *testing.T) {
	globals, stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build (a Go builder, then the runtime image)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	t.Run("Builder", func(t *testing.T) {
		goVersion, ok := argDefault(globals, "GO_VERSION")
		if !ok || !strings.HasPrefix(build.Image, "golang:") {
			t.Fatalf("builder FROM %s (ARG GO_VERSION=%q): want golang:${GO_VERSION}", build.Image, goVersion)
		}
		if want := goDirective(t); goVersion != want {
			t.Errorf("ARG GO_VERSION=%s, go.mod says go %s: keep them equal", goVersion, want)
		}
		if v, ok := argDefault(build.Insts, "VERSION"); !ok || v != "dev" {
			t.Errorf("builder: want ARG VERSION=dev, got %q", v)
		}
		var goBuild string
		for _, in := range build.all("RUN") {
			if strings.Contains(in.Args, "go build") {
				goBuild = in.Args
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/extauthz", "-o /out/extauthz"} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("the go build step %q lacks %q", goBuild, want)
			}
		}
	})

	t.Run("MainVersionExists", func(t *testing.T) {
		// -X main.version silently does nothing if the variable is renamed.
		if !hasStringVar(t, filepath.Join(root, "cmd", "extauthz"), "version") {
			t.Error("cmd/extauthz has no package-level string variable version for -X main.version")
		}
	})

	t.Run("Runtime", func(t *testing.T) {
		if !strings.HasPrefix(final.Image, "gcr.io/distroless/static") || !strings.HasSuffix(final.Image, ":nonroot") {
			t.Errorf("final FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.Image)
		}
		if runs := final.all("RUN"); len(runs) > 0 {
			t.Errorf("the final stage runs %q: it has no shell, and needs none", runs[0].Args)
		}
		users := final.all("USER")
		if len(users) == 0 {
			t.Fatal("no USER in the final stage")
		}
		u, _, _ := strings.Cut(users[len(users)-1].Args, ":")
		if u == "0" || u == "root" || u == "" {
			t.Errorf("USER %s: must not be root", users[len(users)-1].Args)
		}
		if u != "65532" && u != "nonroot" {
			t.Errorf("USER %s, want 65532 (distroless nonroot), which Kubernetes' runAsNonRoot can verify when numeric", u)
		}
		copies := final.all("COPY")
		if len(copies) != 1 || !strings.Contains(copies[0].Args, "--from="+build.Name) || !strings.HasSuffix(copies[0].Args, "/out/extauthz /extauthz") {
			t.Errorf("final stage COPY %v: want only the binary, --from=%s /out/extauthz /extauthz", copies, build.Name)
		}
		ep := final.all("ENTRYPOINT")
		if len(ep) != 1 || !slices.Equal(execForm(t, ep[0]), []string{"/extauthz"}) {
			t.Errorf(`want ENTRYPOINT ["/extauthz"], got %v`, ep)
		}
		cmd := final.all("CMD")
		if len(cmd) != 1 || !slices.Equal(execForm(t, cmd[0]), []string{"serve", "--config", "/etc/extauthz/config.yaml"}) {
			t.Errorf(`want CMD ["serve","--config","/etc/extauthz/config.yaml"], got %v`, cmd)
		}
		var ports []string
		for _, in := range final.all("EXPOSE") {
			ports = append(ports, strings.Fields(in.Args)...)
		}
		for _, p := range []string{"9001", "8080", "9090"} {
			if !slices.Contains(ports, p) {
				t.Errorf("EXPOSE lacks %s (got %v)", p, ports)
			}
		}
	})
}

// TestNodeDockerfiles checks the compose stack's two Node.js images.
func TestNodeDockerfiles(t *testing.T) {
	for _, df := range []string{"compose/authserver/Dockerfile", "compose/mcp-server/Dockerfile"} {
		t.Run(df, func(t *testing.T) {
			globals, stages := parseDockerfile(t, df)
			if len(globals) != 0 || len(stages) != 1 {
				t.Fatalf("want one stage")
			}
			s := stages[0]
			if !pinned(s.Image, nil) || !strings.HasPrefix(s.Image, "node:20.") {
				t.Errorf("FROM %s: want a pinned node:20 image (the lockfiles' engines say >= 20.19)", s.Image)
			}
			if u := s.all("USER"); len(u) == 0 || u[len(u)-1].Args != "node" {
				t.Errorf("want USER node last, got %v", u)
			}
			for _, in := range s.all("RUN") {
				if strings.Contains(in.Args, "npm") && !strings.Contains(in.Args, "npm ci") {
					t.Errorf("%q: install from the committed lockfile with npm ci", in.Args)
				}
			}
			for _, src := range copySources(t, s) {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("COPY %s: %v (the build context is the repository root)", src, err)
				}
			}
			execForm(t, s.all("ENTRYPOINT")[0])
		})
	}
}

func copySources(t *testing.T, s stage) []string {
	var out []string
	for _, in := range s.all("COPY") {
		f := strings.Fields(in.Args)
		if strings.HasPrefix(f[0], "--from") {
			continue
		}
		var args []string
		for _, w := range f {
			if !strings.HasPrefix(w, "--") {
				args = append(args, w)
			}
		}
		out = append(out, args[:len(args)-1]...)
	}
	return out
}

// TestDockerignore matches the build context's .dockerignore the way the
// builder does: everything the images copy is sent, and nothing else that
// matters (the .git directory, node_modules, tests, local binaries).
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(p))
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}

	need := []string{"go.mod", "go.sum"}
	need = append(need, gatewaySources(t)...)
	for _, df := range []string{"compose/authserver/Dockerfile", "compose/mcp-server/Dockerfile"} {
		_, stages := parseDockerfile(t, df)
		need = append(need, copySources(t, stages[0])...)
	}
	for _, p := range need {
		if excluded(p) {
			t.Errorf("%s is needed by an image build but .dockerignore leaves it out of the context", p)
		}
	}
	for _, p := range []string{
		".git/config", "bin/extauthz", "test/authserver/node_modules/oidc-provider/package.json",
		"test/e2e/node_modules/@modelcontextprotocol/sdk/package.json", "pkg/config/config_test.go",
		"pkg/config/testdata/invalid-port.yaml", "README.md", "helm/extauthz/values.yaml", "config.yaml", ".env",
	} {
		if !excluded(p) {
			t.Errorf("%s would be sent to the builder", p)
		}
	}
}

// gatewaySources lists the module's non-test Go files that ./cmd/extauthz
// is built from, relative to the repository root.
func gatewaySources(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{end}}`, "./cmd/extauthz")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(abs, f[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency in the module cache
		}
		for _, g := range f[1:] {
			files = append(files, filepath.Join(rel, g))
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found only %v", files)
	}
	return files
}

// goDirective is go.mod's go version.
func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// hasStringVar reports whether the package in dir declares a package-level
// variable name initialised with a string.
func hasStringVar(t *testing.T, dir, name string) bool {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name || i >= len(vs.Values) {
						continue
					}
					if bl, ok := vs.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
						return true
					}
				}
			}
		}
	}
	return false
}
