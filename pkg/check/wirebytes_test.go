package check_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/pkg/check"
)

// Wire-building helpers, for CheckRequests proto.Marshal never writes
// (the codec's own tests, in internal/wire, have the full set).

func envoyBytes(t testing.TB, e check.EnvoyRequest) []byte {
	t.Helper()
	req, err := e.Proto()
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fbytes(num protowire.Number, parts ...[]byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bytes.Join(parts, nil))
}

func fstr(num protowire.Number, s string) []byte { return fbytes(num, []byte(s)) }

// withAttrs, withHTTP wrap fields of AttributeContext, HttpRequest in a
// CheckRequest.
func withAttrs(fields ...[]byte) []byte { return fbytes(1, fields...) }

func withHTTP(fields ...[]byte) []byte { return withAttrs(fbytes(4, fbytes(2, fields...))) }
