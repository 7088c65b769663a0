// Package monitoring_test checks the Grafana dashboard and the Prometheus
// alert rules that ship with extauthz (helm/extauthz/files/, the chart's
// copies, which docs/ repeats) against the gateway itself:
//
//   - every PromQL query of the dashboard and of the rules parses with
//     Prometheus's own parser (github.com/prometheus/prometheus/promql/parser);
//   - every metric it names, and every label it selects or groups by, is on
//     the /metrics of a real gateway — the built binary, run with Redis, a
//     JWT issuer and an introspecting one — after real traffic;
//   - every alert fires, through Prometheus's rule engine used as a library,
//     on a short recorded series that shows its trouble, and stays quiet on
//     one that does not;
//   - the docs/ copies are the chart's, byte for byte.
//
// It lives in the test/manifests module so that the gateway's go.mod never
// requires Prometheus.
package monitoring_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// TestMain runs the tests from the repository's root, naming files by their
// paths there.
func TestMain(m *testing.M) {
	if err := manifests.Chdir("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
