package check

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
)

// Answer translates a decision into Envoy's CheckResponse.
//
// An allowed request gets status OK with the headers to set and remove
// upstream and the verified claims as dynamic metadata (written as wire
// bytes: see wire.DynamicMetadataField; a receiver reads it as the ordinary
// dynamic_metadata field). Anything else is a
// denied response carrying the HTTP status, headers and body the client
// sees — including the 200 of a metadata document, which Envoy then sends
// as a local reply.
func Answer(d *authz.Decision) *authv3.CheckResponse {
	if d.Allow {
		ok := &authv3.OkHttpResponse{HeadersToRemove: d.Remove}
		if len(d.Upstream) > 0 {
			ok.Headers = headerOptions(d.Upstream)
		}
		if len(d.Respond) > 0 {
			// Rare (a new DPoP nonce): such an answer leaves the
			// hand-written wire path for proto.Marshal.
			ok.ResponseHeadersToAdd = headerOptions(d.Respond)
		}
		resp := &authv3.CheckResponse{
			Status:       &status.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}
		if d.Claims != nil {
			resp.ProtoReflect().SetUnknown(wire.DynamicMetadataField(d.Claims, d.Resource))
		}
		return resp
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(rpcCode(d.Status))},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)}, //nolint:gosec // an HTTP status, 100 to 599
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
