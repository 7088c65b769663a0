package monitoring_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The files: the chart's copies are the source, docs/ repeats them.
const (
	dashboardFile     = "helm/extauthz/files/grafana-dashboard.json"
	dashboardDocsCopy = "docs/grafana-dashboard.json"
	rulesFile         = "helm/extauthz/files/prometheus-rules.yaml"
	rulesDocsCopy     = "docs/prometheus-rules.yaml"
	runbooksFile      = "docs/runbooks.md"
	// grafanaSchemaVersion is the dashboard JSON model's current version
	// (Grafana 12 and 13 write it).
	grafanaSchemaVersion = 42
)

// promql parses as Prometheus does by default.
var promql = parser.NewParser(parser.Options{})

// query is one PromQL expression and where it comes from.
type query struct {
	where string
	expr  string
}

// grafanaVars are the dashboard's interval variables, replaced by a
// duration before parsing; the template variables $job and $instance only
// ever appear inside label matchers' strings, which parse as they are.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// dashboard is the part of the JSON model the tests read; the rest is
// Grafana's.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Panels     []panel `json:"panels"`
	Targets    []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens the rows' panels.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// labelValuesQuery reads Grafana's label_values(selector, label) and
// label_values(label) variable queries: the selector is PromQL.
var labelValuesQuery = regexp.MustCompile(`^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardQueries are every target's expression and every query
// variable's selector.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := readDashboard(t)
	var out []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, query{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), grafanaVars.Replace(tg.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil || m[1] == "" {
			t.Fatalf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
		}
		out = append(out, query{fmt.Sprintf("variable %s", v.Name), grafanaVars.Replace(m[1])})
	}
	return out
}

// readRules parses the rules file as Prometheus loads it: strictly, every
// expression and annotation template checked.
func readRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	return groups
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, query{"alert " + r.Alert, r.Expr})
		}
	}
	return out
}

func TestDocsCopiesAreTheChartFiles(t *testing.T) {
	for src, copied := range map[string]string{dashboardFile: dashboardDocsCopy, rulesFile: rulesDocsCopy} {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(copied)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s, its source: cp %s %s", copied, src, src, copied)
		}
	}
}

func TestQueriesParse(t *testing.T) {
	qs := append(dashboardQueries(t), ruleQueries(t)...)
	if len(qs) < 40 {
		t.Fatalf("only %d queries found: the files were not read as expected", len(qs))
	}
	for _, q := range qs {
		if _, err := promql.ParseExpr(q.expr); err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
		}
	}
}

// TestDashboardShape: what Grafana's provisioning and an import need, and
// what makes the dashboard work with any Prometheus data source.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title (provisioning keys on the uid)")
	}
	if d.SchemaVersion != grafanaSchemaVersion {
		t.Errorf("schemaVersion %d, want %d", d.SchemaVersion, grafanaSchemaVersion)
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			dsVar = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: data source %+v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	if !dsVar {
		t.Error(`no "datasource" variable of type datasource for Prometheus`)
	}
	ids := map[int]string{}
	rows, graphs := 0, 0
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows++
			continue
		}
		graphs++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s: data source %+v", p.Title, tg.RefID, tg.Datasource)
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q target %s does not follow the job and replica variables: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	// What the issue asks the dashboard to show, by the metric each needs.
	var exprs strings.Builder
	for _, q := range dashboardQueries(t) {
		exprs.WriteString(q.expr + "\n")
	}
	for what, metric := range map[string]string{
		"decisions by result and reason": "extauthz_check_decisions_total",
		"Check latency":                  "extauthz_check_duration_seconds_bucket",
		"cache hit ratio per tier":       "extauthz_cache_lookups_total",
		"Redis health":                   "extauthz_redis_circuit_open",
		"Redis errors":                   "extauthz_redis_errors_total",
		"JWKS age":                       "extauthz_jwks_keys_age_seconds",
		"JWKS refresh failures":          "extauthz_jwks_refreshes_total",
		"introspection latency":          "extauthz_introspection_duration_seconds_bucket",
		"introspection errors":           "extauthz_introspection_errors_total",
		"login events":                   "extauthz_login_events_total",
		"revocations":                    "extauthz_revocations_total",
		"revocation propagation":         "extauthz_revocation_propagation_delay_seconds_bucket",
		"config reloads":                 "extauthz_config_reloads_total",
		"process CPU":                    "process_cpu_seconds_total",
		"process memory":                 "process_resident_memory_bytes",
		"GC":                             "go_gc_duration_seconds",
	} {
		if !strings.Contains(exprs.String(), metric) {
			t.Errorf("the dashboard does not show %s (%s)", what, metric)
		}
	}
	if rows < 5 || graphs < 20 {
		t.Errorf("%d rows and %d panels: fewer than expected", rows, graphs)
	}
}

// TestEveryAlertHasARunbook: each alert links its section of
// docs/runbooks.md, which says what it means, what users see and what to
// do, and has a severity and a summary.
func TestEveryAlertHasARunbook(t *testing.T) {
	b, err := os.ReadFile(runbooksFile)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = strings.ToLower(strings.TrimSpace(h))
			continue
		}
		if cur != "" {
			sections[cur] += line + "\n"
		}
	}
	want := []string{
		"ExtauthzIssuerKeysUnavailable", "ExtauthzIssuerKeysStale", "ExtauthzChecksUnavailable",
		"ExtauthzRedisDown", "ExtauthzRedisSlow", "ExtauthzCacheHitRatioCollapsing",
		"ExtauthzConfigReloadFailing", "ExtauthzRevocationPropagationIncomplete", "ExtauthzCheckLatencyHigh",
	}
	var names []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			anchor := strings.ToLower(r.Alert)
			if got, want := r.Annotations["runbook_url"], "https://github.com/extauthz/extauthz/blob/main/docs/runbooks.md#"+anchor; got != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
			}
			body, ok := sections[anchor]
			if !ok {
				t.Errorf("%s: no section ## %s in %s", r.Alert, r.Alert, runbooksFile)
				continue
			}
			for _, part := range []string{"**What it means.**", "**What users see.**", "**What to do.**"} {
				if !strings.Contains(body, part) {
					t.Errorf("%s: its runbook lacks %s", r.Alert, part)
				}
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity %q, summary %q, description %q", r.Alert, r.Labels["severity"], r.Annotations["summary"], r.Annotations["description"])
			}
			if r.For == 0 {
				t.Errorf("%s: no for: one bad scrape would page", r.Alert)
			}
		}
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no alert %s", w)
		}
	}
}
