package helm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// compactEntryBytes is what one cache.max_entries entry of the compact tier
// takes outside the Go heap: 144 bytes of entry and 8 of index
// (pkg/verdict, compact.go).
const compactEntryBytes = 152

// The peers the chart's NetworkPolicy admits by default, as documented in
// values.yaml and the chart's README.
var (
	defaultProxies = []networkingv1.NetworkPolicyPeer{
		{
			NamespaceSelector: &metav1.LabelSelector{},
			PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "service.istio.io/canonical-name", Operator: metav1.LabelSelectorOpExists},
			}},
		},
		{
			NamespaceSelector: &metav1.LabelSelector{},
			PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"app.kubernetes.io/managed-by": "envoy-gateway", "app.kubernetes.io/component": "proxy",
			}},
		},
	}
	defaultMonitoring = []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
	}}
)

// ingressFrom returns, by port name, the peers the NetworkPolicy admits
// (nil: anyone), and whether the port has a rule at all.
func ingressFrom(t *testing.T, np *networkingv1.NetworkPolicy) (map[string][]networkingv1.NetworkPolicyPeer, map[string]bool) {
	t.Helper()
	from, ruled := map[string][]networkingv1.NetworkPolicyPeer{}, map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Fatalf("a rule without a port: %+v", rule)
			}
			from[p.Port.String()] = rule.From
			ruled[p.Port.String()] = true
		}
	}
	return from, ruled
}

// checkSafeDefaults: what a release gets without reading the docs — the
// NetworkPolicy (the Check port from the mesh's proxies, the admin port from
// the monitoring namespace's Prometheus), GOMEMLIMIT from the memory limit
// less the compact slab, pprof off.
func checkSafeDefaults(t *testing.T, r *rendered) {
	t.Helper()
	np := r.NetworkPolicy
	if np == nil {
		t.Fatal("no NetworkPolicy: it is on by default")
	}
	from, ruled := ingressFrom(t, np)
	if !ruled["grpc"] || !reflect.DeepEqual(from["grpc"], defaultProxies) {
		t.Errorf("the Check port admits %+v, want the mesh's proxies %+v", from["grpc"], defaultProxies)
	}
	if !ruled["admin"] || !reflect.DeepEqual(from["admin"], defaultMonitoring) {
		t.Errorf("the admin port admits %+v, want Prometheus in the monitoring namespace %+v", from["admin"], defaultMonitoring)
	}
	if !ruled["http"] || from["http"] != nil {
		t.Errorf("the HTTP port: ruled %v, from %+v; want it open (public metadata and login)", ruled["http"], from["http"])
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("policyTypes %v, want Ingress only by default", np.Spec.PolicyTypes)
	}

	c := container(t, r)
	limit := c.Resources.Limits.Memory().Value()
	want := (limit - int64(r.Config.Cache.MaxEntries)*compactEntryBytes) * 9 / 10
	if got := envValue(c, "GOMEMLIMIT"); got != strconv.FormatInt(want, 10) {
		t.Errorf("GOMEMLIMIT %q, want %d: the memory limit %d less %d entries × %d bytes, less a tenth",
			got, want, limit, r.Config.Cache.MaxEntries, compactEntryBytes)
	}
	if r.Config.Admin.PProf {
		t.Error("pprof is on by default")
	}
	if r.ConfigMap != nil && !strings.Contains(r.ConfigMap.Data["config.yaml"], "pprof: false") {
		t.Error("the rendered config.yaml does not say pprof: false")
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkDashboardAndRules: the dashboard ConfigMap and the PrometheusRule
// carry the chart's files as they are.
func checkDashboardAndRules(t *testing.T, r *rendered) {
	t.Helper()
	d := r.Dashboard
	if d == nil || d.Labels["grafana_dashboard"] != "1" {
		t.Fatalf("dashboard ConfigMap %v, want one labelled grafana_dashboard: \"1\"", d)
	}
	file, err := os.ReadFile(filepath.Join(chartDir, "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Data["extauthz.json"]; got != strings.TrimSuffix(string(file), "\n") {
		t.Errorf("the ConfigMap's extauthz.json (%d bytes) is not files/grafana-dashboard.json (%d bytes)", len(got), len(file))
	}
	var dash map[string]any
	if err := json.Unmarshal([]byte(d.Data["extauthz.json"]), &dash); err != nil || dash["uid"] == nil {
		t.Errorf("the dashboard does not decode: %v", err)
	}

	pr := r.PrometheusRule
	if pr == nil {
		t.Fatal("no PrometheusRule")
	}
	if pr.Labels["release"] != "prometheus" {
		t.Errorf("PrometheusRule labels %v: prometheusRule.labels not applied", pr.Labels)
	}
	// The spec is the rules file: the same groups, rules and fields.
	docs, err := manifests.ReadDocs(filepath.Join(chartDir, "files", "prometheus-rules.yaml"))
	if err != nil || len(docs) != 1 {
		t.Fatalf("files/prometheus-rules.yaml: %v", err)
	}
	var fromFile, rendered any
	if err := json.Unmarshal(docs[0], &fromFile); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rendered); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalizeRules(fromFile), normalizeRules(rendered)) {
		t.Errorf("the PrometheusRule's spec is not files/prometheus-rules.yaml:\n%s", b)
	}
	alerts := 0
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert != "" {
				alerts++
				if !strings.HasPrefix(rule.Annotations["runbook_url"], "https://github.com/extauthz/extauthz/blob/main/docs/runbooks.md#") {
					t.Errorf("%s: runbook_url %q", rule.Alert, rule.Annotations["runbook_url"])
				}
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts in the PrometheusRule", alerts)
	}
}

// normalizeRules turns the rule durations, which the operator's types keep
// as strings and YAML as strings too, and the expressions, which the
// operator keeps as an IntOrString, into one form.
func normalizeRules(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalizeRules(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeRules(e)
		}
		return out
	case string:
		return strings.TrimSpace(x)
	}
	return v
}

// TestGoMemLimit: GOMEMLIMIT follows the memory limit and the cache size,
// can be set or turned off, refuses a limit the slab alone would fill, and
// gives way to one in extraEnv.
func TestGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		want string // "": not set
	}{
		{"a larger cache", []string{"resources.limits.memory=1Gi", "config.cache.max_entries=1000000"},
			strconv.FormatInt((1<<30-1000000*compactEntryBytes)*9/10, 10)},
		{"a decimal limit", []string{"resources.limits.memory=500M"}, strconv.FormatInt((500000000-100000*compactEntryBytes)*9/10, 10)},
		{"no memory limit", []string{"resources.limits=null"}, ""},
		{"turned off", []string{"goMemLimit="}, ""},
		{"set by hand", []string{"goMemLimit=300MiB"}, "300MiB"},
		{"from extraEnv", []string{"extraEnv[0].name=GOMEMLIMIT", "extraEnv[0].value=123MiB"}, "123MiB"},
		{"configured from the environment", []string{"envConfig.EXTAUTHZ_RESOURCE=https://mcp.example.com/mcp", "envConfig.EXTAUTHZ_ISSUER=https://auth.example.com"},
			strconv.FormatInt((256<<20-100000*compactEntryBytes)*9/10, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			c := container(t, render(t, args...))
			n := 0
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					n++
				}
			}
			if got := envValue(c, "GOMEMLIMIT"); got != tc.want || n > 1 {
				t.Errorf("GOMEMLIMIT %q (%d times), want %q", got, n, tc.want)
			}
		})
	}
	t.Run("a limit the slab fills", func(t *testing.T) {
		_, err := runHelm(t, "template", "extauthz", chartDir, "--kube-version", kubeVersion,
			"--set", "resources.limits.memory=64Mi", "--set", "config.cache.max_entries=1000000")
		if err == nil || !strings.Contains(err.Error(), "does not exceed the compact cache's slab") {
			t.Errorf("64 MiB for a slab of 152 MB: %v", err)
		}
	})
}

// TestNetworkPolicySelectors: the documented selectors can be replaced, and
// the policy turned off.
func TestNetworkPolicySelectors(t *testing.T) {
	r := render(t, "--set", "networkPolicy.grpcFrom[0].podSelector.matchLabels.app=envoy",
		"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=observability")
	from, _ := ingressFrom(t, r.NetworkPolicy)
	if want := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "envoy"}}}}; !reflect.DeepEqual(from["grpc"], want) {
		t.Errorf("grpcFrom replaced: %+v, want %+v", from["grpc"], want)
	}
	if want := []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "observability"}}}}; !reflect.DeepEqual(from["admin"], want) {
		t.Errorf("metricsFrom replaced: %+v, want %+v", from["admin"], want)
	}
	if r := render(t, "--set", "networkPolicy.enabled=false"); r.NetworkPolicy != nil {
		t.Error("networkPolicy.enabled=false still renders one")
	}
	// Nobody on the admin port: a rule with no peer would admit everyone,
	// so the port gets no rule at all.
	np := render(t, "--set", "networkPolicy.metricsFrom=null").NetworkPolicy
	if _, ruled := ingressFrom(t, np); ruled["admin"] {
		t.Errorf("metricsFrom empty: the admin port still has a rule: %+v", np.Spec.Ingress)
	}
}
