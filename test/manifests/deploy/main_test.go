package deploy_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// TestMain runs the tests in the repository's deploy/ directory, the files
// they check, which they name by paths relative to it.
func TestMain(m *testing.M) {
	if err := manifests.Chdir("deploy"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
