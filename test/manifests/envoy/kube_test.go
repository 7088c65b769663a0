package envoy_test

import (
	"encoding/json"
	"testing"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/extauthz/extauthz/test/manifests/internal/manifests"
)

// istioObject is the envelope of an Istio custom resource. Its spec is an
// istio.io/api proto message, decoded with protojson, which refuses unknown
// fields; the generated UnmarshalJSON of those types would accept them.
type istioObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

func oneDoc(t *testing.T, path string) []byte {
	t.Helper()
	docs, err := manifests.ReadDocs(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0]
}

// meshProvider decodes a meshConfig strictly and returns its extauthz
// extension provider.
func meshProvider(t *testing.T, raw json.RawMessage) *meshv1alpha1.MeshConfig_ExtensionProvider {
	t.Helper()
	var mc meshv1alpha1.MeshConfig
	if err := manifests.DecodeProto(raw, &mc); err != nil {
		t.Fatal(err)
	}
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == "extauthz" {
			g := p.GetEnvoyExtAuthzGrpc()
			if g == nil {
				t.Fatal("provider extauthz is not envoyExtAuthzGrpc")
			}
			if g.GetPort() != 9001 || g.GetFailOpen() || g.GetStatusOnError() != "503" {
				t.Errorf("provider extauthz: port %d, failOpen %v, statusOnError %q; want 9001, false, 503",
					g.GetPort(), g.GetFailOpen(), g.GetStatusOnError())
			}
			if g.GetTimeout().AsDuration() < 600*time.Millisecond {
				t.Errorf("provider extauthz: timeout %v is not above the gateway's own bounds", g.GetTimeout().AsDuration())
			}
			body := g.GetIncludeRequestBodyInCheck()
			if int(body.GetMaxRequestBytes()) != defaultMaxBodyBytes(t) || body.GetAllowPartialMessage() {
				t.Errorf("includeRequestBodyInCheck %v: want maxRequestBytes %d, allowPartialMessage false", body, defaultMaxBodyBytes(t))
			}
			return p
		}
	}
	t.Fatal("no extension provider named extauthz")
	return nil
}

func checkIstioOperator(t *testing.T, path string) {
	var op struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := manifests.DecodeKube(oneDoc(t, path), &op); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		t.Fatalf("%s/%s, want install.istio.io/v1alpha1 IstioOperator", op.APIVersion, op.Kind)
	}
	p := meshProvider(t, op.Spec.MeshConfig)

	// The istiod Helm values say the same.
	var vals struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := manifests.DecodeKube(oneDoc(t, "istio/istiod-values.yaml"), &vals); err != nil {
		t.Fatal(err)
	}
	if q := meshProvider(t, vals.MeshConfig); !proto.Equal(p, q) {
		t.Errorf("extension-provider.yaml and istiod-values.yaml disagree:\n%v\n%v", p, q)
	}
}

func checkIstiodValues(t *testing.T, path string) {
	var vals struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := manifests.DecodeKube(oneDoc(t, path), &vals); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	meshProvider(t, vals.MeshConfig)
}

func checkAuthorizationPolicy(t *testing.T, path string) {
	var obj istioObject
	if err := manifests.DecodeKube(oneDoc(t, path), &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.APIVersion != "security.istio.io/v1" || obj.Kind != "AuthorizationPolicy" {
		t.Fatalf("%s/%s, want security.istio.io/v1 AuthorizationPolicy", obj.APIVersion, obj.Kind)
	}
	var ap securityv1beta1.AuthorizationPolicy
	if err := manifests.DecodeProto(obj.Spec, &ap); err != nil {
		t.Fatal(err)
	}
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("action %v, want CUSTOM", ap.GetAction())
	}
	if ap.GetProvider().GetName() != "extauthz" {
		t.Errorf("provider %q, want extauthz (the name in extension-provider.yaml)", ap.GetProvider().GetName())
	}
	if len(ap.GetSelector().GetMatchLabels()) == 0 {
		t.Error("no selector: the policy would apply to every workload of the namespace")
	}
	if len(ap.GetRules()) == 0 {
		t.Error("a CUSTOM policy without rules matches no request: nothing would be checked")
	}
}

// checkEnvoyFilter: the EnvoyFilter that names the resource on the
// sidecar's inbound routes, so the Host header never chooses it.
func checkEnvoyFilter(t *testing.T, path string) {
	var obj istioObject
	if err := manifests.DecodeKube(oneDoc(t, path), &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.APIVersion != "networking.istio.io/v1alpha3" || obj.Kind != "EnvoyFilter" {
		t.Fatalf("%s/%s, want networking.istio.io/v1alpha3 EnvoyFilter", obj.APIVersion, obj.Kind)
	}
	var ef networkingv1alpha3.EnvoyFilter
	if err := manifests.DecodeProto(obj.Spec, &ef); err != nil {
		t.Fatal(err)
	}
	if len(ef.GetWorkloadSelector().GetLabels()) == 0 {
		t.Error("no workloadSelector: the patch would apply to every workload of the namespace")
	}
	patches := ef.GetConfigPatches()
	if len(patches) != 1 {
		t.Fatalf("%d config patches, want 1", len(patches))
	}
	cp := patches[0]
	if cp.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_ROUTE ||
		cp.GetMatch().GetContext() != networkingv1alpha3.EnvoyFilter_SIDECAR_INBOUND ||
		cp.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_MERGE {
		t.Errorf("patch applies to %v in %v by %v; want HTTP_ROUTE, SIDECAR_INBOUND, MERGE",
			cp.GetApplyTo(), cp.GetMatch().GetContext(), cp.GetPatch().GetOperation())
	}
	// The value is merged into each inbound Route: it must decode as part
	// of one (a whole Route would need a match and an action), and what
	// it adds must validate.
	value, err := cp.GetPatch().GetValue().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var route routev3.Route
	if err := manifests.DecodeProto(value, &route); err != nil {
		t.Fatalf("patch value is not part of an Envoy Route: %v", err)
	}
	a := route.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
	if err := manifests.ValidateEnvoy(a); err != nil {
		t.Fatal(err)
	}
	pr, err := manifests.Unpack[*extauthzv3.ExtAuthzPerRoute](a)
	if err != nil {
		t.Fatalf("typed_per_filter_config[envoy.filters.http.ext_authz]: %v", err)
	}
	if name := pr.GetCheckSettings().GetContextExtensions()["resource"]; name != "mcp" {
		t.Errorf("context_extensions resource %q, want mcp (resources[].name in the compose policy)", name)
	}
}

// checkIstioExtProc: the list filter goes right after Istio's ext_authz
// filter on the protected workload's inbound sidecar, and is the filter
// of ext_proc_filter.yaml on Istio's cluster for the extension provider.
func checkIstioExtProc(t *testing.T, path string) {
	var obj istioObject
	if err := manifests.DecodeKube(oneDoc(t, path), &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if obj.APIVersion != "networking.istio.io/v1alpha3" || obj.Kind != "EnvoyFilter" {
		t.Fatalf("%s/%s, want networking.istio.io/v1alpha3 EnvoyFilter", obj.APIVersion, obj.Kind)
	}
	var ef networkingv1alpha3.EnvoyFilter
	if err := manifests.DecodeProto(obj.Spec, &ef); err != nil {
		t.Fatal(err)
	}
	if len(ef.GetWorkloadSelector().GetLabels()) == 0 {
		t.Error("no workloadSelector: the filter would apply to every workload of the namespace")
	}
	patches := ef.GetConfigPatches()
	if len(patches) != 1 {
		t.Fatalf("%d config patches, want 1", len(patches))
	}
	cp := patches[0]
	if cp.GetApplyTo() != networkingv1alpha3.EnvoyFilter_HTTP_FILTER ||
		cp.GetMatch().GetContext() != networkingv1alpha3.EnvoyFilter_SIDECAR_INBOUND ||
		cp.GetPatch().GetOperation() != networkingv1alpha3.EnvoyFilter_Patch_INSERT_AFTER ||
		cp.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() != "envoy.filters.http.ext_authz" {
		t.Errorf("patch %v: want an HTTP_FILTER inserted after envoy.filters.http.ext_authz on SIDECAR_INBOUND", cp)
	}
	value, err := cp.GetPatch().GetValue().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var f hcmv3.HttpFilter
	if err := manifests.DecodeProto(value, &f); err != nil {
		t.Fatalf("patch value is not an Envoy HttpFilter: %v", err)
	}
	checkExtProc(t, &f, "outbound|9001||extauthz.extauthz.svc.cluster.local")
}

func checkGatewayAPI(t *testing.T, path string) {
	docs, err := manifests.ReadDocs(path)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]*gwapiv1.HTTPRoute{}
	var policies []*egv1a1.SecurityPolicy
	for i, d := range docs {
		apiVersion, kind, err := manifests.Kind(d)
		if err != nil {
			t.Fatal(err)
		}
		switch apiVersion + " " + kind {
		case "gateway.networking.k8s.io/v1 HTTPRoute":
			var r gwapiv1.HTTPRoute
			if err := manifests.DecodeKube(d, &r); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			routes[r.Name] = &r
		case "gateway.envoyproxy.io/v1alpha1 SecurityPolicy":
			var p egv1a1.SecurityPolicy
			if err := manifests.DecodeKube(d, &p); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			policies = append(policies, &p)
		default:
			t.Fatalf("document %d: unexpected %s %s", i, apiVersion, kind)
		}
	}
	if len(policies) != 1 {
		t.Fatalf("%d SecurityPolicies, want 1", len(policies))
	}
	sp := policies[0]
	if len(sp.Spec.TargetRefs) != 1 {
		t.Fatalf("targetRefs %v, want the MCP route", sp.Spec.TargetRefs)
	}
	target := sp.Spec.TargetRefs[0]
	if target.Kind != "HTTPRoute" || routes[string(target.Name)] == nil {
		t.Errorf("the policy targets %s %s, which is not an HTTPRoute of this file", target.Kind, target.Name)
	}
	ea := sp.Spec.ExtAuth
	if ea == nil || ea.GRPC == nil || len(ea.GRPC.BackendRefs) != 1 {
		t.Fatalf("want extAuth.grpc with one backendRef, got %+v", ea)
	}
	if be := ea.GRPC.BackendRefs[0]; be.Name != "extauthz" || be.Port == nil || *be.Port != 9001 {
		t.Errorf("extAuth backend %s:%v, want the chart's Service extauthz:9001", be.Name, be.Port)
	}
	if ea.FailOpen == nil || *ea.FailOpen {
		t.Error("extAuth.failOpen must be written, and false")
	}
	if ea.StatusOnError == nil || *ea.StatusOnError != 503 {
		t.Error("extAuth.statusOnError must be 503")
	}
	if ea.BodyToExtAuth == nil || int(ea.BodyToExtAuth.MaxRequestBytes) != defaultMaxBodyBytes(t) {
		t.Errorf("bodyToExtAuth %+v, want maxRequestBytes %d", ea.BodyToExtAuth, defaultMaxBodyBytes(t))
	}
	if ea.Timeout == nil {
		t.Error("extAuth.timeout unset: Envoy Gateway's default is 10s")
	} else if d, err := time.ParseDuration(string(*ea.Timeout)); err != nil || d < 600*time.Millisecond {
		t.Errorf("extAuth.timeout %s (%v): want a duration above the gateway's own bounds", *ea.Timeout, err)
	}
	found := false
	for _, ce := range ea.ContextExtensions {
		if ce.Name == "resource" && ce.Type == egv1a1.ContextExtensionValueTypeValue && ce.Value != nil && *ce.Value != "" {
			found = true
		}
	}
	if !found {
		t.Error("no contextExtensions entry naming the resource")
	}
}
