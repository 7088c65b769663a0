package check_test

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
)

// panicking is a decider with a bug.
type panicking struct{}

func (panicking) Check(context.Context, *authz.Request) authz.Decision { panic("a bug below") }

// TestPanicIsA503: a panic while deciding is the denial table's internal
// answer, a 503 to retry (UNAVAILABLE), never an allow nor a gRPC error
// (which failure_mode_allow lets through), on the wire path and the typed
// path alike.
func TestPanicIsA503(t *testing.T) {
	s := check.NewServer(panicking{}, nil)
	er := check.MCPToolCall(resourceURI, "t")
	req, err := er.Proto()
	if err != nil {
		t.Fatal(err)
	}
	typed, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for path, resp := range map[string]*authv3.CheckResponse{
		"wire":  s.CheckWire(context.Background(), envoyBytes(t, er)),
		"typed": typed,
	} {
		d := resp.GetDeniedResponse()
		hs := map[string]string{}
		for _, h := range d.GetHeaders() {
			hs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if resp.GetStatus().GetCode() != int32(codes.Unavailable) || d.GetStatus().GetCode() != 503 ||
			d.GetBody() != `{"error":"temporarily_unavailable","error_description":"the request cannot be authorized now; retry later"}` ||
			hs["retry-after"] != "5" || hs["www-authenticate"] != "" {
			t.Errorf("%s: %v, want the 503 of an internal error", path, resp)
		}
	}
}
