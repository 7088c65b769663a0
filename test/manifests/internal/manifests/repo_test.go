package manifests

import (
	"os"
	"path/filepath"
	"testing"
)

func writeGoMod(t *testing.T, dir, module string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+module+"\n\ngo 1.26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRepoDirPassesOverNestedModules: from inside a nested module the root
// is the directory whose go.mod is the gateway's, not the nearest go.mod,
// nor one whose module path merely starts with the gateway's.
func TestRepoDirPassesOverNestedModules(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeGoMod(t, root, rootModule)
	nested := filepath.Join(root, "test", "manifests")
	writeGoMod(t, nested, rootModule+"/test/manifests")
	writeGoMod(t, filepath.Join(nested, "deploy"), rootModule+"x")
	t.Chdir(filepath.Join(nested, "deploy"))
	got, err := RepoDir("helm")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "helm"); got != want {
		t.Errorf("RepoDir(helm) = %s, want %s", got, want)
	}
}

func TestRepoDirWithoutTheRoot(t *testing.T) {
	dir := t.TempDir()
	writeGoMod(t, dir, rootModule+"/bench")
	t.Chdir(dir)
	if got, err := RepoDir("deploy"); err == nil {
		t.Errorf("RepoDir(deploy) = %s outside the repository, want an error", got)
	}
}
