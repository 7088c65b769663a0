// Package envoy_test checks that every Envoy, Istio and Gateway API file
// shipped in this directory is valid for the APIs it is written against:
// Envoy's with Envoy's own generated protos and their validation rules
// (protoc-gen-validate), every typed config unpacked and validated in turn;
// Istio's and the Gateway API's decoded strictly into their Go API types.
package envoy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/extauthz/extauthz/test/manifests/internal/manifests"

	// Every extension a typed config in these files names: protojson and
	// Any.UnmarshalNew resolve @type through the global registry, so a type
	// that is not linked here fails the test, as it should.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// checks names every YAML file under envoy/ (testdata aside) and how it is
// checked. TestEveryFileIsChecked fails for a file that is not listed.
var checks = map[string]func(t *testing.T, path string){
	"envoy.yaml":                       checkBootstrap,
	"ext_authz_filter.yaml":            checkExtAuthzFilter,
	"ext_authz_per_route.yaml":         checkExtAuthzPerRoute,
	"ext_proc_filter.yaml":             checkExtProcFilter,
	"istio/extension-provider.yaml":    checkIstioOperator,
	"istio/istiod-values.yaml":         checkIstiodValues,
	"istio/authorization-policy.yaml":  checkAuthorizationPolicy,
	"istio/envoy-filter.yaml":          checkEnvoyFilter,
	"istio/ext-proc-filter.yaml":       checkIstioExtProc,
	"gateway-api/security-policy.yaml": checkGatewayAPI,
}

func TestEveryFileIsChecked(t *testing.T) {
	var found []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return fs.SkipDir
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			found = append(found, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range found {
		if checks[p] == nil {
			t.Errorf("%s is not checked: add it to the checks table in envoy_test.go", p)
		}
	}
	for p := range checks {
		if !slices.Contains(found, p) {
			t.Errorf("%s is in the checks table but does not exist", p)
		}
	}
}

func TestFiles(t *testing.T) {
	for p, check := range checks {
		t.Run(p, func(t *testing.T) { check(t, p) })
	}
}

// TestInvalid shows that the checks can fail: each testdata/invalid-*.yaml
// is decoded as the message its "# as:" line names and must fail with an
// error containing every "# want:" line.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/invalid-*.yaml (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			as := manifests.TrimComment(b, "# as: ")
			want := manifests.TrimComment(b, "# want: ")
			if len(as) != 1 || len(want) == 0 {
				t.Fatalf("%s needs one '# as:' line and at least one '# want:' line", f)
			}
			var m proto.Message
			switch as[0] {
			case "bootstrap":
				m = &bootstrapv3.Bootstrap{}
			case "http_filter":
				m = &hcmv3.HttpFilter{}
			default:
				t.Fatalf("unknown '# as: %s'", as[0])
			}
			err = decodeEnvoyErr(t, f, m)
			if err == nil {
				t.Fatalf("%s was accepted", f)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// decodeEnvoyErr decodes a one-document YAML file into m and validates it
// with every typed config inside.
func decodeEnvoyErr(t *testing.T, path string, m proto.Message) error {
	t.Helper()
	docs, err := manifests.ReadDocs(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", path, len(docs))
	}
	if err := manifests.DecodeProto(docs[0], m); err != nil {
		return err
	}
	return manifests.ValidateEnvoy(m)
}

func decodeEnvoy(t *testing.T, path string, m proto.Message) {
	t.Helper()
	if err := decodeEnvoyErr(t, path, m); err != nil {
		t.Fatalf("%s:\n%v", path, err)
	}
}

func checkExtAuthzFilter(t *testing.T, path string) {
	var f hcmv3.HttpFilter
	decodeEnvoy(t, path, &f)
	cfg, err := manifests.Unpack[*extauthzv3.ExtAuthz](f.GetTypedConfig())
	if err != nil {
		t.Fatal(err)
	}
	checkExtAuthz(t, cfg)
	if got := cfg.GetGrpcService().GetTimeout().AsDuration(); got <= 0 {
		t.Errorf("grpc_service.timeout %v: set one above the gateway's own bounds", got)
	}
}

// extAuthzNamespace is pkg/extproc.Namespace, which this module does not
// import (it would bring gRPC in): where Envoy files the Check's dynamic
// metadata, and where the external processor reads it.
const extAuthzNamespace = "envoy.filters.http.ext_authz"

// checkExtProcFilter: the list filter's processing modes are the ones the
// gateway's external processor is written for, it fails closed, and it
// forwards the namespace the Check's dynamic metadata is filed under.
func checkExtProcFilter(t *testing.T, path string) {
	var f hcmv3.HttpFilter
	decodeEnvoy(t, path, &f)
	checkExtProc(t, &f, "extauthz")
}

func checkExtProc(t *testing.T, f *hcmv3.HttpFilter, cluster string) {
	t.Helper()
	if f.GetName() != "envoy.filters.http.ext_proc" {
		t.Errorf("filter name %q", f.GetName())
	}
	if err := manifests.ValidateEnvoy(f.GetTypedConfig()); err != nil {
		t.Fatal(err)
	}
	cfg, err := manifests.Unpack[*extprocv3.ExternalProcessor](f.GetTypedConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GetFailureModeAllow() {
		t.Error("failure_mode_allow: a listing would pass unfiltered when the gateway cannot be asked")
	}
	if got := cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != cluster {
		t.Errorf("cluster %q: the gateway's gRPC listener is the cluster %s", got, cluster)
	}
	m := cfg.GetProcessingMode()
	if m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SKIP || m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND ||
		m.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || m.GetResponseBodyMode() != extprocv3.ProcessingMode_STREAMED {
		t.Errorf("processing_mode %v: want request headers skipped, response headers sent, the response body streamed unless overridden", m)
	}
	if !cfg.GetAllowModeOverride() {
		t.Error("allow_mode_override: the gateway asks for a BUFFERED body for JSON")
	}
	if ns := cfg.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(); !slices.Contains(ns, extAuthzNamespace) {
		t.Errorf("forwarding_namespaces.untyped %q: the Check's dynamic metadata is under %s", ns, extAuthzNamespace)
	}
}

func checkExtAuthzPerRoute(t *testing.T, path string) {
	// typed_per_filter_config: a map from filter name to a typed config.
	docs, err := manifests.ReadDocs(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]*jsonAny
	if err := manifests.DecodeKube(docs[0], &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m["envoy.filters.http.ext_authz"] == nil {
		t.Fatalf("want exactly the key envoy.filters.http.ext_authz, got %v", m)
	}
	a := m["envoy.filters.http.ext_authz"].Any
	if err := manifests.ValidateEnvoy(a); err != nil {
		t.Fatal(err)
	}
	pr, err := manifests.Unpack[*extauthzv3.ExtAuthzPerRoute](a)
	if err != nil {
		t.Fatal(err)
	}
	if pr.GetCheckSettings().GetContextExtensions()["resource"] != "mcp" {
		t.Errorf("context_extensions %v", pr.GetCheckSettings().GetContextExtensions())
	}
}

// jsonAny decodes a google.protobuf.Any from JSON with protojson (strict).
type jsonAny struct{ *anypb.Any }

func (a *jsonAny) UnmarshalJSON(b []byte) error {
	a.Any = &anypb.Any{}
	return protojson.Unmarshal(b, a.Any)
}

// checkExtAuthz holds what every ext_authz filter shipped here must say.
func checkExtAuthz(t *testing.T, cfg *extauthzv3.ExtAuthz) {
	t.Helper()
	if cfg.GetFailureModeAllow() {
		t.Error("failure_mode_allow must stay false: the gateway never fails open, and neither may Envoy")
	}
	if cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "extauthz" {
		t.Errorf("cluster %q, want extauthz", cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName())
	}
	if got := cfg.GetTransportApiVersion().String(); got != "V3" {
		t.Errorf("transport_api_version %s, want V3", got)
	}
	if !cfg.GetValidateMutations() {
		t.Error("validate_mutations must be true: a header value that is no valid header must fail the request, not travel on")
	}
	if got := cfg.GetStatusOnError().GetCode(); got != 503 {
		t.Errorf("status_on_error %v, want 503", got)
	}
	b := cfg.GetWithRequestBody()
	if b.GetMaxRequestBytes() != uint32(defaultMaxBodyBytes(t)) || b.GetAllowPartialMessage() {
		t.Errorf("with_request_body %v: want max_request_bytes = the gateway's mcp.max_body_bytes (%d), allow_partial_message false",
			b, defaultMaxBodyBytes(t))
	}
}
