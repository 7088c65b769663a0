// Package helm_test lints and renders the extauthz chart with Helm itself
// (helm.sh/helm/v3, built from the Go module proxy at a pinned version), for
// the default values and every helm/extauthz/ci/*-values.yaml, then decodes
// each rendered manifest strictly into its Kubernetes, Prometheus Operator
// or Istio Go type and runs the gateway's own config check on the rendered
// policy file.
package helm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// helmModule is the Helm the tests run; bump it deliberately.
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

const chartDir = "extauthz"

// kubeVersion is the cluster version the chart is rendered and linted for.
// A Helm built with go install does not know its own client-go's version
// and would otherwise assume v1.20, below the chart's kubeVersion.
const kubeVersion = "v1.31.0"

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helm returns the path of a Helm binary, building it once per test
// process with `go install` into a temporary directory. A Helm that cannot
// be built fails the test: the chart would otherwise go unchecked.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		dir, err := os.MkdirTemp("", "extauthz-helm-")
		if err != nil {
			helmErr = err
			return
		}
		cmd := exec.Command("go", "install", helmModule)
		// Outside this module: go install pkg@version ignores go.mod, but
		// a GOFLAGS=-mod=... from the environment would not apply anyway.
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("go install %s: %v\n%s", helmModule, err, out)
			return
		}
		helmBin = filepath.Join(dir, "helm")
	})
	if helmErr != nil {
		t.Fatalf("building Helm: %v", helmErr)
	}
	return helmBin
}

// TestMain runs the tests in the repository's helm/ directory, beside the
// chart they render.
func TestMain(m *testing.M) {
	if err := manifests.Chdir("helm"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if helmBin != "" {
		os.RemoveAll(filepath.Dir(helmBin))
	}
	os.Exit(code)
}

// runHelm runs helm with a private home, so that no user's repositories or
// plugins take part.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helm(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// cases are the values files the chart is checked with: the defaults, and
// every ci/*-values.yaml (helm's chart-testing convention).
func cases(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want at least three ci/*-values.yaml, found %v", files)
	}
	c := map[string]string{"default": ""}
	for _, f := range files {
		c[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return c
}

func valuesArgs(f string) []string {
	if f == "" {
		return nil
	}
	return []string{"-f", f}
}

// rendered is one release's manifests, decoded.
type rendered struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	ServiceAccount *corev1.ServiceAccount
	PDB            *policyv1.PodDisruptionBudget
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicy  *networkingv1.NetworkPolicy
	ServiceMonitor *monitoringv1.ServiceMonitor
	PrometheusRule *monitoringv1.PrometheusRule
	Dashboard      *corev1.ConfigMap // the Grafana dashboard's (dashboards.enabled)
	AuthzPolicy    *securityv1beta1.AuthorizationPolicy
	EnvoyFilter    *networkingv1alpha3.EnvoyFilter
	Config         *config.Config
}

// istioObject is an Istio resource's envelope; the spec is decoded with
// protojson into istio.io/api's type, which refuses unknown fields.
type istioObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "extauthz", chartDir, "--namespace", "extauthz", "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifests.Docs([]byte(out))
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	r := &rendered{}
	one := func(kind string, have bool) {
		if have {
			t.Errorf("two %s manifests", kind)
		}
	}
	for _, d := range docs {
		apiVersion, kind, err := manifests.Kind(d)
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch apiVersion + " " + kind {
		case "apps/v1 Deployment":
			one(kind, r.Deployment != nil)
			r.Deployment = &appsv1.Deployment{}
			into = r.Deployment
		case "v1 Service":
			one(kind, r.Service != nil)
			r.Service = &corev1.Service{}
			into = r.Service
		case "v1 ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := manifests.DecodeKube(d, cm); err != nil {
				t.Fatalf("%s %s is not a valid %T:\n%v", apiVersion, kind, cm, err)
			}
			if strings.HasSuffix(cm.Name, "-dashboard") {
				one("dashboard ConfigMap", r.Dashboard != nil)
				r.Dashboard = cm
			} else {
				one(kind, r.ConfigMap != nil)
				r.ConfigMap = cm
			}
			continue
		case "v1 ServiceAccount":
			r.ServiceAccount = &corev1.ServiceAccount{}
			into = r.ServiceAccount
		case "policy/v1 PodDisruptionBudget":
			r.PDB = &policyv1.PodDisruptionBudget{}
			into = r.PDB
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.HPA = &autoscalingv2.HorizontalPodAutoscaler{}
			into = r.HPA
		case "networking.k8s.io/v1 NetworkPolicy":
			r.NetworkPolicy = &networkingv1.NetworkPolicy{}
			into = r.NetworkPolicy
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.ServiceMonitor = &monitoringv1.ServiceMonitor{}
			into = r.ServiceMonitor
		case "monitoring.coreos.com/v1 PrometheusRule":
			r.PrometheusRule = &monitoringv1.PrometheusRule{}
			into = r.PrometheusRule
		case "security.istio.io/v1 AuthorizationPolicy":
			var obj istioObject
			if err := manifests.DecodeKube(d, &obj); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			r.AuthzPolicy = &securityv1beta1.AuthorizationPolicy{}
			if err := manifests.DecodeProto(obj.Spec, r.AuthzPolicy); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			continue
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			var obj istioObject
			if err := manifests.DecodeKube(d, &obj); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			r.EnvoyFilter = &networkingv1alpha3.EnvoyFilter{}
			if err := manifests.DecodeProto(obj.Spec, r.EnvoyFilter); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			continue
		default:
			t.Fatalf("unexpected manifest %s %s: decode it strictly here", apiVersion, kind)
		}
		if err := manifests.DecodeKube(d, into); err != nil {
			t.Fatalf("%s %s is not a valid %T:\n%v", apiVersion, kind, into, err)
		}
	}
	if r.Deployment == nil || r.Service == nil {
		t.Fatal("want at least a Deployment and a Service")
	}
	if r.ConfigMap == nil {
		// Configured from the environment alone (envConfig): the
		// container's variables pass the gateway's own check, as
		// `extauthz check-config` with no file runs it. A variable from a
		// Secret stands for its value.
		c := container(t, r)
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom != nil:
				env[e.Name] = "from-a-secret"
			default:
				env[e.Name] = e.Value
			}
		}
		lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
		if !config.EnvConfigured(lookup) {
			t.Fatal("no ConfigMap, and no EXTAUTHZ_RESOURCE: the gateway would have no configuration")
		}
		var environ []string
		for name, v := range env {
			environ = append(environ, name+"="+v)
		}
		if unknown := config.UnknownEnvVars(environ); len(unknown) > 0 {
			t.Fatalf("serve refuses the unknown variables %v", unknown)
		}
		if r.Config, err = config.FromEnv(lookup); err != nil {
			t.Fatalf("the container's environment fails extauthz check-config:\n%v", err)
		}
		return r
	}
	// The rendered policy file passes the gateway's own check, exactly as
	// `extauthz check-config` runs it.
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(r.ConfigMap.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.Config, err = config.Load(p); err != nil {
		t.Fatalf("the rendered config fails extauthz check-config:\n%v\n---\n%s", err, r.ConfigMap.Data["config.yaml"])
	}
	return r
}

func TestLint(t *testing.T) {
	for name, f := range cases(t) {
		t.Run(name, func(t *testing.T) {
			if out, err := runHelm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, valuesArgs(f)...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	for name, f := range cases(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, valuesArgs(f)...)
			checkDeployment(t, r)
			checkService(t, r, name == "full") // only full enables metrics
			checkSecretsWired(t, r)
			checkOptional(t, name, r)
		})
	}
}

func container(t *testing.T, r *rendered) corev1.Container {
	t.Helper()
	cs := r.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0]
}

func checkDeployment(t *testing.T, r *rendered) {
	t.Helper()
	pod := r.Deployment.Spec.Template.Spec
	c := container(t, r)
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no security contexts")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot must be true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("runAsUser must be a non-root UID (the image's 65532)")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %v: drop ALL, add none", sc.Capabilities)
	}
	for _, s := range []*corev1.SeccompProfile{psc.SeccompProfile, sc.SeccompProfile} {
		if s == nil || s.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccompProfile %v, want RuntimeDefault", s)
		}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the gateway does not call the Kubernetes API: automountServiceAccountToken false")
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	// The config listens where the container ports say, on the pod network.
	for name, addr := range map[string]string{"grpc": r.Config.Listen.GRPC, "http": r.Config.Listen.HTTP, "admin": r.Config.Listen.Admin} {
		if want := fmt.Sprintf("0.0.0.0:%d", ports[name]); addr != want {
			t.Errorf("listen.%s %s, want %s (container port %s)", name, addr, want, name)
		}
	}

	lp, rp := c.LivenessProbe, c.ReadinessProbe
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "http" {
		t.Errorf("livenessProbe %v, want GET /healthz on http", lp)
	}
	if rp == nil || rp.GRPC == nil || rp.GRPC.Port != ports["grpc"] || rp.GRPC.Service == nil || *rp.GRPC.Service != "envoy.service.auth.v3.Authorization" {
		t.Errorf("readinessProbe %v, want gRPC health of envoy.service.auth.v3.Authorization on the grpc port", rp)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %v: want cpu and memory requests and a memory limit", c.Resources)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/extauthz" && m.ReadOnly {
			mounted = true
		}
	}
	if r.ConfigMap == nil {
		if !slices.Equal(c.Args, []string{"serve"}) || mounted {
			t.Errorf("configured from the environment: args %v (want serve alone), config volume mounted: %v", c.Args, mounted)
		}
	} else {
		if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/extauthz/config.yaml"}) {
			t.Errorf("args %v", c.Args)
		}
		if !mounted {
			t.Error("the ConfigMap is not mounted read-only at /etc/extauthz")
		}
	}
	sum := r.Deployment.Spec.Template.Annotations["checksum/config"]
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		t.Errorf("checksum/config %q, want a SHA-256", sum)
	}
}

func checkService(t *testing.T, r *rendered, metrics bool) {
	t.Helper()
	sp := map[string]corev1.ServicePort{}
	for _, p := range r.Service.Spec.Ports {
		sp[p.Name] = p
	}
	g, ok := sp["grpc"]
	if !ok || g.AppProtocol == nil || *g.AppProtocol != "grpc" || g.Port != 9001 {
		t.Errorf("Service port grpc %+v: want 9001 with appProtocol grpc (Envoy and Istio then speak HTTP/2)", g)
	}
	if h, ok := sp["http"]; !ok || h.Port != 8080 {
		t.Errorf("Service port http %+v, want 8080", h)
	}
	_, admin := sp["admin"]
	if admin != metrics {
		t.Errorf("the admin port is in the Service: %v; want it there only when metrics are enabled (%v)", admin, metrics)
	}
}

// checkSecretsWired: every {env: NAME} secret of the rendered config is an
// environment variable from a Secret, and every {file: PATH} lies in a
// mounted Secret volume; secrets never appear in the ConfigMap.
func checkSecretsWired(t *testing.T, r *rendered) {
	t.Helper()
	c := container(t, r)
	env := map[string]*corev1.EnvVar{}
	for i := range c.Env {
		env[c.Env[i].Name] = &c.Env[i]
	}
	secretVolumes := map[string]bool{}
	for _, v := range r.Deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = true
		}
	}
	for _, s := range secrets(r.Config) {
		switch {
		case s.Env != "":
			e := env[s.Env]
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" {
				t.Errorf("the config reads $%s, which is not set from a Secret", s.Env)
			}
		case s.File != "":
			ok := false
			for _, m := range c.VolumeMounts {
				if secretVolumes[m.Name] && strings.HasPrefix(s.File, strings.TrimSuffix(m.MountPath, "/")+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("the config reads %s, which is in no mounted Secret", s.File)
			}
		}
	}
}

func secrets(c *config.Config) []config.Secret {
	out := []config.Secret{c.Admin.Token, c.Cache.RedisPassword, c.Cache.Redis.Sentinel.Password, c.Login.SessionKey}
	for _, r := range c.Resources {
		out = append(out, r.Login.ClientSecret, r.Login.PrivateKey)
		for _, as := range r.AuthorizationServers {
			out = append(out, as.Introspection.ClientSecret, as.Introspection.PrivateKey)
		}
	}
	return out
}

// checkOptional checks what each values file turns on.
func checkOptional(t *testing.T, name string, r *rendered) {
	t.Helper()
	switch name {
	case "default":
		if r.PDB == nil || r.HPA != nil || r.ServiceMonitor != nil || r.AuthzPolicy != nil || r.Dashboard != nil || r.PrometheusRule != nil {
			t.Errorf("defaults: want a PDB and no HPA, ServiceMonitor, AuthorizationPolicy, dashboard or PrometheusRule")
		}
		if len(r.Deployment.Spec.Template.Spec.TopologySpreadConstraints) != 2 {
			t.Error("defaults: want the pods spread over zones and nodes")
		}
		checkSafeDefaults(t, r)
	case "minimal":
		if r.PDB != nil || r.HPA != nil || r.ServiceMonitor != nil || r.Dashboard != nil || r.PrometheusRule != nil {
			t.Error("minimal: nothing optional")
		}
		// What is safe is not optional: the NetworkPolicy and GOMEMLIMIT stay.
		checkSafeDefaults(t, r)
	case "full":
		if r.HPA == nil || r.HPA.Spec.MaxReplicas != 12 || r.HPA.Spec.ScaleTargetRef.Name != r.Deployment.Name {
			t.Errorf("full: HPA %v", r.HPA)
		}
		if r.Deployment.Spec.Replicas != nil {
			t.Error("full: with an HPA the Deployment must not set replicas (each upgrade would reset the scale)")
		}
		if r.PDB == nil || r.PDB.Spec.MaxUnavailable == nil {
			t.Error("full: want a PDB with maxUnavailable")
		}
		sm := r.ServiceMonitor
		if sm == nil || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("full: ServiceMonitor %v, want /metrics on port admin", sm)
		}
		np := r.NetworkPolicy
		if np == nil {
			t.Fatal("full: no NetworkPolicy")
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.String() == "admin" && len(rule.From) == 0 {
					t.Error("full: the admin port is open to everyone")
				}
			}
		}
		if ap := r.AuthzPolicy; ap == nil || ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM || ap.GetProvider().GetName() != "extauthz" {
			t.Errorf("full: AuthorizationPolicy %v, want action CUSTOM with provider extauthz", ap)
		}
		// The resource is named on the workloads' routes, never left to
		// the Host header.
		ef := r.EnvoyFilter
		if ef == nil || len(ef.GetConfigPatches()) != 1 || ef.GetWorkloadSelector().GetLabels()["app"] != "mcp-server" {
			t.Fatalf("full: EnvoyFilter %v, want one patch for the workloads labelled app=mcp-server", ef)
		}
		v := ef.GetConfigPatches()[0].GetPatch().GetValue().AsMap()
		ext, _ := v["typed_per_filter_config"].(map[string]any)["envoy.filters.http.ext_authz"].(map[string]any)
		if res := ext["check_settings"].(map[string]any)["context_extensions"].(map[string]any)["resource"]; res != "mcp" {
			t.Errorf("full: EnvoyFilter names resource %v, want mcp", res)
		}
		if r.Config.Cache.RedisURL == "" || r.Config.Cache.RedisPassword.Env == "" || r.Config.Admin.Token.Env == "" {
			t.Error("full: want Redis with a password and an admin token from Secrets")
		}
		checkDashboardAndRules(t, r)
	case "env":
		res := r.Config.Resources[0]
		if r.ConfigMap != nil || res.Resource != "https://mcp.example.com/mcp" || res.AuthorizationServers[0].TokenMode != config.TokenModeAuto ||
			res.AuthorizationServers[0].Introspection.ClientSecret.Env != "EXTAUTHZ_INTROSPECTION_CLIENT_SECRET" {
			t.Errorf("env: ConfigMap %v, resource %+v", r.ConfigMap != nil, res)
		}
		if r.Config.Cache.RedisURL == "" || r.Config.Cache.RedisPassword.Env == "" || r.Config.Admin.Token.Env == "" {
			t.Error("env: want Redis with a password and an admin token from Secrets")
		}
	case "secrets":
		if r.Config.Login.SessionKey.Env == "" {
			t.Error("secrets: want the session key from the environment")
		}
	}
}

// TestConfigChangeRollsPods shows that checksum/config follows the config.
func TestConfigChangeRollsPods(t *testing.T) {
	a := render(t)
	b := render(t, "--set", "config.log.level=debug")
	if a.Deployment.Spec.Template.Annotations["checksum/config"] == b.Deployment.Spec.Template.Annotations["checksum/config"] {
		t.Error("a config change did not change checksum/config: pods would keep the old policy")
	}
}

// TestSchemaRefusesUnknownValues shows that values.schema.json is strict.
func TestSchemaRefusesUnknownValues(t *testing.T) {
	for _, set := range []string{"replicaCont=2", "metrics.enable=true", "ports.grpc=0", "config.listen.grpc=0.0.0.0:1",
		"envConfig.EXTAUTHZ_LISTEN_GRPC=0.0.0.0:1", "envConfig.OAUTH_CLIENT_SECRET=x", "envConfig.lower=x",
		"dashboards.enable=true", "prometheusRule.label.x=y", "goMemLimit=lots"} {
		if _, err := runHelm(t, "template", "extauthz", chartDir, "--kube-version", kubeVersion, "--set", set); err == nil {
			t.Errorf("--set %s was accepted", set)
		}
	}
}
