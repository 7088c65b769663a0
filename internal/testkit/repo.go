package testkit

import (
	"fmt"
	"os"
	"path/filepath"
)

// RepoRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod: where the Node projects and
// other fixtures the tests run live.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent directory", wd)
		}
		dir = parent
	}
}
