// Package envoy_test checks that the Envoy configuration shipped in this
// directory is valid for Envoy's v3 API: it is decoded with Envoy's own
// generated protos and their validation rules (protoc-gen-validate).
package envoy_test

import (
	"encoding/json"
	"os"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func yamlToJSON(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type validator interface{ ValidateAll() error }

func decode(t *testing.T, j []byte, m proto.Message) {
	t.Helper()
	if err := (protojson.UnmarshalOptions{}).Unmarshal(j, m); err != nil {
		t.Fatalf("not a valid %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Fatalf("%s fails Envoy's validation: %v", m.ProtoReflect().Descriptor().FullName(), err)
		}
	}
}

func unpack(t *testing.T, a *anypb.Any, m proto.Message) {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Fatalf("%s fails Envoy's validation: %v", m.ProtoReflect().Descriptor().FullName(), err)
		}
	}
}

func TestExtAuthzFilter(t *testing.T) {
	var f hcmv3.HttpFilter
	decode(t, yamlToJSON(t, "ext_authz_filter.yaml"), &f)
	var cfg extauthzv3.ExtAuthz
	unpack(t, f.GetTypedConfig(), &cfg)
	if cfg.GetFailureModeAllow() {
		t.Error("failure_mode_allow must stay false: the gateway never fails open, and neither may Envoy")
	}
	if cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "extauthz" {
		t.Errorf("cluster %q", cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName())
	}
}

func TestExtAuthzPerRoute(t *testing.T) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(yamlToJSON(t, "ext_authz_per_route.yaml"), &m); err != nil {
		t.Fatal(err)
	}
	var a anypb.Any
	if err := protojson.Unmarshal(m["envoy.filters.http.ext_authz"], &a); err != nil {
		t.Fatal(err)
	}
	var pr extauthzv3.ExtAuthzPerRoute
	unpack(t, &a, &pr)
	if pr.GetCheckSettings().GetContextExtensions()["resource"] != "mcp" {
		t.Errorf("context_extensions %v", pr.GetCheckSettings().GetContextExtensions())
	}
}
