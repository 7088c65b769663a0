package check

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/token"
)

// TestDynamicMetadataOnTheWire: the metadata written as raw bytes reads
// back, on the other side of a real marshal, as exactly the Struct built
// the ordinary way.
func TestDynamicMetadataOnTheWire(t *testing.T) {
	exp := time.Unix(1795772079, 0)
	cases := []*token.Claims{
		{Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "https://auth.example.com", ClientID: "c1",
			Audience: []string{"https://mcp.example.com/mcp", "other"}, Scopes: []string{"mcp:tools", "mcp:write"}, Scope: "mcp:tools mcp:write"}},
		{Subject: "svc", Expiry: exp, Grant: &token.Grant{Issuer: "i"}},                                              // no client, scopes or audience
		{Subject: string(make([]byte, 300)), Expiry: exp, Grant: &token.Grant{Issuer: "i", Audience: []string{"a"}}}, // lengths over one varint byte
	}
	for _, c := range cases {
		d := authz.Decision{Allow: true, Status: 200, Resource: "mcp", Claims: c, Remove: []string{"authorization"}}
		wire, err := proto.Marshal(Answer(&d))
		if err != nil {
			t.Fatal(err)
		}
		var got authv3.CheckResponse
		if err := proto.Unmarshal(wire, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"resource": "mcp", "iss": c.Issuer, "sub": c.Subject, "exp": float64(exp.Unix())}
		if c.ClientID != "" {
			want["client_id"] = c.ClientID
		}
		if len(c.Scopes) > 0 {
			want["scope"] = toAny(c.Scopes)
		}
		if len(c.Audience) > 0 {
			want["aud"] = toAny(c.Audience)
		}
		ref, err := structpb.NewStruct(want)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.GetDynamicMetadata(), ref) {
			t.Errorf("dynamic metadata\n got %v\nwant %v", got.GetDynamicMetadata(), ref)
		}
		if got.GetOkResponse().GetHeadersToRemove()[0] != "authorization" || len(got.ProtoReflect().GetUnknown()) != 0 {
			t.Errorf("the rest of the response was disturbed: %v", &got)
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestAllowedRespondHeaders: headers for the client's response to an
// allowed request (a new DPoP-Nonce) reach Envoy as response_headers_to_add,
// overwriting, and never as headers for the upstream.
func TestAllowedRespondHeaders(t *testing.T) {
	d := authz.Decision{Allow: true, Status: 200, Resource: "mcp", Remove: []string{"authorization", "dpop"},
		Respond: []authz.Header{{Name: "dpop-nonce", Value: "n-2"}}}
	b, err := proto.Marshal(Answer(&d))
	if err != nil {
		t.Fatal(err)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	add := got.GetOkResponse().GetResponseHeadersToAdd()
	if len(add) != 1 || add[0].GetHeader().GetKey() != "dpop-nonce" || add[0].GetHeader().GetValue() != "n-2" ||
		add[0].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
		t.Errorf("response_headers_to_add = %v", add)
	}
	if len(got.GetOkResponse().GetHeaders()) != 0 {
		t.Errorf("upstream headers %v, want none", got.GetOkResponse().GetHeaders())
	}
}
