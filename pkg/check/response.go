package check

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/token"
)

// Response translates a decision into Envoy's answer.
//
// An allowed request gets status OK with the headers to set and remove
// upstream and the verified claims as dynamic metadata. Anything else is a
// denied response carrying the HTTP status, headers and body the client
// sees — including the 200 of a metadata document, which Envoy then sends
// as a local reply.
func Response(d *authz.Decision) *authv3.CheckResponse {
	if d.Allow {
		ok := &authv3.OkHttpResponse{HeadersToRemove: d.Remove}
		if len(d.Upstream) > 0 {
			ok.Headers = headerOptions(d.Upstream)
		}
		return &authv3.CheckResponse{
			Status:          &status.Status{Code: int32(code.Code_OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: metadataOf(d),
		}
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(rpcCode(d.Status))},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
			Headers: headerOptions(d.ResponseHeaders()),
			Body:    string(d.Body),
		}},
	}
}

// rpcCode gives the gRPC status Envoy records for a denial. Envoy only
// distinguishes OK from the rest; the code makes Envoy's access logs and
// stats tell an authentication failure from a refusal.
func rpcCode(httpStatus int) code.Code {
	switch httpStatus {
	case 400:
		return code.Code_INVALID_ARGUMENT
	case 401:
		return code.Code_UNAUTHENTICATED
	case 503:
		return code.Code_UNAVAILABLE
	default:
		return code.Code_PERMISSION_DENIED
	}
}

func headerOptions(hs []authz.Header) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, len(hs))
	// One backing array for all values: a response is built per request.
	vals := make([]corev3.HeaderValue, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		vals[i].Key, vals[i].Value = h.Name, h.Value
		opts[i].Header = &vals[i]
		opts[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		out[i] = &opts[i]
	}
	return out
}

// metadataOf exposes the verified claims to later Envoy filters (RBAC,
// access logs, Lua) under envoy.filters.http.ext_authz. The Struct is
// built once per verified token and shared by every response for it
// (gRPC only reads a message it sends); building it per request was most
// of the allocations of a cache hit.
func metadataOf(d *authz.Decision) *structpb.Struct {
	if d.Claims == nil {
		return nil
	}
	// The claims are cached per resource, so the resource is fixed too.
	resource := d.Resource
	return d.Claims.Memo(func(c *token.Claims) any { return dynamicMetadata(c, resource) }).(*structpb.Struct)
}

func dynamicMetadata(c *token.Claims, resource string) *structpb.Struct {
	f := make(map[string]*structpb.Value, 8)
	str := func(k, v string) {
		if v != "" {
			f[k] = structpb.NewStringValue(v)
		}
	}
	str("resource", resource)
	str("iss", c.Issuer)
	str("sub", c.Subject)
	str("client_id", c.ClientID)
	if len(c.Scopes) > 0 {
		f["scope"] = stringList(c.Scopes)
	}
	if len(c.Audience) > 0 {
		f["aud"] = stringList(c.Audience)
	}
	f["exp"] = structpb.NewNumberValue(float64(c.Expiry.Unix()))
	return &structpb.Struct{Fields: f}
}

func stringList(ss []string) *structpb.Value {
	vs := make([]*structpb.Value, len(ss))
	for i, s := range ss {
		vs[i] = structpb.NewStringValue(s)
	}
	return structpb.NewListValue(&structpb.ListValue{Values: vs})
}
