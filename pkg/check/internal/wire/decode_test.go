package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/check/internal/wire"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// The protected resource the requests are for, and its RFC 9728 metadata.
const (
	resourceURI = "https://mcp.example.com/mcp"
	prmURL      = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
)

// differential decodes b both ways: proto.Unmarshal then Translate (the
// reference), and DecodeRequest. Either both fail, or both succeed with deeply equal
// requests — nil and empty maps included, no normalising: DecodeRequest
// reproduces Translate's nil-ness too. It decodes from a copy of b that it
// then overwrites, so a string aliasing the input shows as a difference.
func differential(t testing.TB, b []byte) {
	t.Helper()
	var msg authv3.CheckRequest
	perr := proto.Unmarshal(b, &msg)
	in := bytes.Clone(b)
	var got authz.Request
	derr := wire.DecodeRequest(in, &got)
	for i := range in {
		in[i] = 0xa5
	}
	var want authz.Request
	var lerr error
	if perr == nil {
		want = wire.Translate(&msg)
		lerr = wire.HeaderLimits(&want)
	}
	switch {
	case perr != nil && derr == nil:
		t.Fatalf("proto.Unmarshal fails (%v), DecodeRequest succeeds with %+v\ninput %x", perr, got, b)
	case perr != nil && errors.Is(derr, authz.ErrHeaderLimits):
		t.Fatalf("proto.Unmarshal fails (%v), DecodeRequest finds the header limits exceeded\ninput %x", perr, b)
	case perr == nil && lerr == nil && derr != nil:
		t.Fatalf("proto.Unmarshal succeeds, DecodeRequest fails: %v\ninput %x", derr, b)
	case perr == nil && lerr != nil && !errors.Is(derr, authz.ErrHeaderLimits):
		t.Fatalf("HeaderLimits refuses what Translate gives (%v), DecodeRequest: %v\ninput %x", lerr, derr, b)
	case derr != nil:
		if !reflect.DeepEqual(got, authz.Request{}) {
			t.Fatalf("DecodeRequest failed (%v) but left %+v", derr, got)
		}
		return
	}
	// The decoder records the header names holding "_" as it builds the
	// map (the reference leaves the decision to scan for them): exactly
	// those names, each once.
	var under []string
	for k := range got.Headers {
		if strings.IndexByte(k, '_') >= 0 {
			under = append(under, k)
		}
	}
	recorded := slices.Clone(got.Underscored)
	slices.Sort(under)
	slices.Sort(recorded)
	if !got.UnderscoredKnown || !slices.Equal(under, recorded) {
		t.Fatalf("DecodeRequest recorded the names with '_' as %q (known %v), the headers have %q\ninput %x", recorded, got.UnderscoredKnown, under, b)
	}
	got.Underscored, got.UnderscoredKnown = nil, false
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("requests differ\nTranslate:     %s\nDecodeRequest: %s\ninput %x", show(want), show(got), b)
	}
}

func show(r authz.Request) string {
	return fmt.Sprintf("{Method:%q Scheme:%q Host:%q Path:%q Headers:%#v(nil=%v) Body:%q(nil=%v) ContextExtensions:%#v(nil=%v)}",
		r.Method, r.Scheme, r.Host, r.Path, r.Headers, r.Headers == nil, r.Body, r.Body == nil, r.ContextExtensions, r.ContextExtensions == nil)
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func envoyBytes(t testing.TB, e check.EnvoyRequest) []byte {
	t.Helper()
	req, err := e.Proto()
	if err != nil {
		t.Fatal(err)
	}
	return marshal(t, req)
}

// testToken is an RS256 access token of realistic size (as realisticRequest).
func testToken(t testing.TB) string {
	t.Helper()
	iss, _ := testkit.Issuer(t, "RS256", "", resourceURI, nil)
	tok, err := iss.Mint(devissuer.Token{
		Subject: "user-7f3c9a2e-4b1d-4c8e-9f6a-1d2e3f4a5b6c", ClientID: "mcp-client-0a1b2c3d",
		Scopes: []string{"mcp:tools", "mcp:resources", "openid", "profile"},
		Extra:  map[string]any{"sid": strings.Repeat("s", 36), "acr": "urn:mace:incommon:iap:silver"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Wire-building helpers, for what proto.Marshal never writes.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func fbytes(num protowire.Number, parts ...[]byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), cat(parts...))
}

func fstr(num protowire.Number, s string) []byte { return fbytes(num, []byte(s)) }

func fvarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func ffixed32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func fgroup(num protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.StartGroupType)
	b = append(b, cat(parts...)...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

// withAttrs, withHTTP wrap fields of AttributeContext, HttpRequest in a
// CheckRequest.
func withAttrs(fields ...[]byte) []byte { return fbytes(1, fields...) }

func withHTTP(fields ...[]byte) []byte { return withAttrs(fbytes(4, fbytes(2, fields...))) }

func entry(k, v string) []byte { return cat(fstr(1, k), fstr(2, v)) }

func headerValue(k, v string, raw []byte) []byte {
	b := cat(fstr(1, k), fstr(2, v))
	if raw != nil {
		b = append(b, fbytes(3, raw)...)
	}
	return b
}

// fullRequest sets every field of every message CheckRequest reaches.
func fullRequest(t testing.TB, headerMapOnly bool) []byte {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{
		"a": "b", "n": 1.5, "t": true, "z": nil,
		"l": []any{"x", false, nil, 2.0, map[string]any{"deep": "y", "list": []any{"é"}}},
		"s": map[string]any{"k": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(wrapperspb.String("typed"))
	if err != nil {
		t.Fatal(err)
	}
	h := &authv3.AttributeContext_HttpRequest{
		Id: "req-1", Method: "POST", Path: "/mcp?x=1", Host: "mcp.example.com:443", Scheme: "https",
		Query: "x=1", Fragment: "frag", Size: 42, Protocol: "HTTP/2", Body: "{\"jsonrpc\":\"2.0\"}",
		RawBody: []byte{0xff, 0x00, 0x01},
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Authorization", Value: "Bearer a"},
			{Key: "X-Raw", RawValue: []byte{0xc3, 0x28}},
			{Key: "x-both", Value: "v", RawValue: []byte("raw")},
			{Key: "authorization", Value: "Bearer b"},
			{Key: "ÄÖ-Ü", Value: "umlaut"},
			{Key: "x-empty-raw", Value: "kept", RawValue: []byte{}},
		}},
	}
	if !headerMapOnly {
		h.Headers = map[string]string{":authority": "other.example.com", ":method": "GET", "x-a": "1", "": ""}
	}
	peer := func(addr *corev3.Address) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: addr, Service: "svc", Labels: map[string]string{"l": "v", "": ""}, Principal: "spiffe://p", Certificate: "pem"}
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: peer(&corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol: corev3.SocketAddress_UDP, Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "https"},
			ResolverName: "r", Ipv4Compat: true, NetworkNamespaceFilepath: "/var/run/netns/x",
		}}}),
		Destination: peer(&corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/sock", Mode: 0o600}}}),
		Request:     &authv3.AttributeContext_Request{Time: timestamppb.New(time.Unix(1700000000, 5)), Http: h},
		ContextExtensions: map[string]string{
			"resource": "mcp", "": "empty-key",
		},
		MetadataContext:      &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"f": st}, TypedFilterMetadata: map[string]*anypb.Any{"t": a}},
		RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"r": st}},
		TlsSession:           &authv3.AttributeContext_TLSSession{Sni: "mcp.example.com"},
	}}
	b := marshal(t, req)
	internal := &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{
		EnvoyInternalAddress: &corev3.EnvoyInternalAddress{AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "l"}, EndpointId: "e"},
	}}}
	// A second source, merged into the first.
	return cat(b, withAttrs(fbytes(1, marshal(t, internal))))
}

// seeds are the inputs of the differential tests and the fuzz corpus.
func seeds(t testing.TB) [][]byte {
	t.Helper()
	tok := testToken(t)
	mcp := check.MCPToolCall(resourceURI, tok)
	raw := mcp
	raw.RawHeaders = true
	body := mcp
	body.Body = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}`)
	rawBody := body
	rawBody.RawHeaders = true
	ext := mcp
	ext.ContextExtensions = map[string]string{"resource": "mcp", "other": ""}
	dup := check.EnvoyRequest{URL: resourceURI, Headers: [][2]string{{"Authorization", "Bearer a"}, {"authorization", "Bearer b"}}}
	dupRaw := dup
	dupRaw.RawHeaders = true
	query := check.EnvoyRequest{Method: "GET", URL: resourceURI + "?access_token=x&a=%2F", Headers: [][2]string{{"authorization", "Bearer " + tok}}}
	preflight := check.EnvoyRequest{Method: "OPTIONS", URL: resourceURI, Headers: [][2]string{{"origin", "https://app.example"}, {"access-control-request-method", "POST"}}}
	meta := check.EnvoyRequest{URL: prmURL}
	noToken := check.EnvoyRequest{URL: "http://other.example.com:8080/x/../mcp"}

	out := [][]byte{
		nil,
		{},
		envoyBytes(t, mcp), envoyBytes(t, raw), envoyBytes(t, body), envoyBytes(t, rawBody), envoyBytes(t, ext),
		envoyBytes(t, dup), envoyBytes(t, dupRaw), envoyBytes(t, query), envoyBytes(t, preflight),
		envoyBytes(t, meta), envoyBytes(t, noToken),
		fullRequest(t, false), fullRequest(t, true),
		// Only pseudo-headers: the fallbacks.
		withHTTP(fbytes(3, entry(":method", "PUT")), fbytes(3, entry(":authority", "a.example")), fbytes(3, entry(":path", "/p")), fbytes(3, entry(":scheme", "http"))),
		withHTTP(fbytes(3, entry("host", "h.example"))),
		withHTTP(fbytes(13, fbytes(1, headerValue("HOST", "h.example", nil)), fbytes(1, headerValue(":Method", "", []byte("DELETE"))))),
		// Merges: a later occurrence of a message merges into the earlier.
		cat(withHTTP(fstr(2, "GET"), fbytes(3, entry("a", "1"))), withHTTP(fstr(4, "/x"), fbytes(3, entry("a", "2")), fbytes(3, entry("b", "3")))),
		cat(withHTTP(fbytes(13, fbytes(1, headerValue("A", "1", nil)))), withHTTP(fbytes(13, fbytes(1, headerValue("a", "2", nil))))),
		cat(withHTTP(fstr(2, "GET")), withHTTP(fstr(2, ""))),
		cat(withHTTP(fbytes(12, []byte("raw"))), withHTTP(fstr(11, "body"))),
		cat(withHTTP(fbytes(12, []byte("raw")), fbytes(12, nil), fstr(11, "body"))),
		// Wrong wire types: unknown fields. A map field of the wrong type
		// still makes the map (so headers hides header_map).
		withHTTP(fvarint(3, 1), fbytes(13, fbytes(1, headerValue("a", "1", nil)))),
		withHTTP(fbytes(13, fbytes(1, headerValue("a", "1", nil))), ffixed32(3, 7)),
		withAttrs(fvarint(10, 1)),
		withAttrs(fgroup(10)),
		withHTTP(fvarint(2, 5), fvarint(12, 1), fvarint(13, 1), ffixed32(4, 1)),
		withAttrs(fvarint(4, 1), fvarint(1, 1), fvarint(11, 2)),
		fvarint(1, 3),
		// Unknown fields, groups included, at every level.
		cat(fvarint(99, 1), fgroup(7, fvarint(1, 1), fgroup(8, fstr(2, "x"))), withHTTP(fgroup(99, fstr(1, "\xff")), fstr(2, "GET"))),
		withHTTP(fbytes(3, entry("k", "v"), fvarint(3, 9), fgroup(4)), fbytes(13, fbytes(1, fvarint(9, 1), headerValue("k2", "v", nil), fgroup(5)))),
		withAttrs(fbytes(10, fstr(2, "no key")), fbytes(10, fstr(1, "no value")), fbytes(10), fbytes(10, entry("k", "1"), entry("k", "2"))),
		cat(protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.VarintType), []byte{1}),
		cat(protowire.AppendTag(nil, protowire.MaxValidNumber+1, protowire.VarintType), []byte{1}),
		{0x00, 0x01},
		{0x0c},       // end group at top level
		{0x0e, 0x00}, // wire type 6
		{0x0f, 0x00}, // wire type 7
		{0x0a, 0x80}, // truncated length
		{0x0a, 0x05, 0x00},
		{0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, // varint overflow
		{0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, // the longest valid varint
		{0x88, 0x80, 0x80, 0x80, 0x00, 0x01},                               // non-minimal tag
		// UTF-8: strings are checked everywhere, bytes nowhere.
		withHTTP(fstr(2, "G\xffET")),
		withHTTP(fstr(1, "\xc3")),
		withHTTP(fstr(11, "\xed\xa0\x80")), // a surrogate
		withHTTP(fbytes(12, []byte("\xff"))),
		withHTTP(fbytes(3, entry("\xff", "v"))),
		withHTTP(fbytes(3, entry("k", "\xff"))),
		withHTTP(fbytes(13, fbytes(1, headerValue("k", "v", []byte("\xff"))))),
		withHTTP(fbytes(13, fbytes(1, headerValue("k\xff", "v", nil)))),
		withAttrs(fbytes(1, fstr(2, "svc\xff"))),
		withAttrs(fbytes(2, fbytes(3, entry("l", "\xff")))),
		withAttrs(fbytes(2, fbytes(1, fbytes(1, fstr(2, "\xff"))))),
		withAttrs(fbytes(12, fstr(1, "\xff"))),
		withAttrs(fbytes(11, fbytes(2, fstr(1, "t"), fbytes(2, fstr(1, "type.googleapis.com/\xff"))))),
		withAttrs(fbytes(13, fbytes(1, fstr(1, "f"), fbytes(2, fbytes(1, fstr(1, "k"), fbytes(2, fbytes(6, fbytes(1, fstr(3, "\xff"))))))))),
		withAttrs(fbytes(10, entry("resource", "\xff"))),
		withAttrs(fbytes(4, fbytes(1, fstr(1, "\xff")))), // Timestamp has no string: unknown wire type only
	}
	// Header limits: one name too many, in either form; at the limit
	// with a repeat; over in header_map but hidden by headers; over, then
	// a wire error, which wins.
	mapEntries, rawEntries := make([][]byte, wire.MaxHeaders+1), make([][]byte, wire.MaxHeaders+1)
	for i := range mapEntries {
		mapEntries[i] = fbytes(3, entry(fmt.Sprint("h", i), "v"))
		rawEntries[i] = fbytes(1, headerValue(fmt.Sprint("H", i), "v", nil))
	}
	out = append(out,
		withHTTP(mapEntries...),
		withHTTP(fbytes(13, rawEntries...)),
		withHTTP(fbytes(13, append(rawEntries[:wire.MaxHeaders:wire.MaxHeaders], rawEntries[0])...)),
		cat(withHTTP(fbytes(13, rawEntries...)), withHTTP(fbytes(3, entry("a", "1")))),
		cat(withHTTP(mapEntries...), []byte{0x0a, 0x80}),
	)
	// Pairs concatenated: a message followed by another merges into it.
	base := len(out)
	for i := 2; i < base && i < 16; i += 3 {
		for j := i + 1; j < base; j += 4 {
			out = append(out, cat(out[i], out[j]))
		}
	}
	return out
}

func TestDecodeRequestSeeds(t *testing.T) {
	for i, b := range seeds(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) { differential(t, b) })
	}
}

// TestDecodeRequestCases pins what a few of the seeds decode to, so the
// differential cannot pass by both sides being wrong the same way.
func TestDecodeRequestCases(t *testing.T) {
	decode := func(b []byte) authz.Request {
		t.Helper()
		var r authz.Request
		if err := wire.DecodeRequest(b, &r); err != nil {
			t.Fatal(err)
		}
		differential(t, b)
		return r
	}
	r := decode(withHTTP(fvarint(3, 1), fbytes(13, fbytes(1, headerValue("a", "1", nil)))))
	if r.Headers == nil || len(r.Headers) != 0 {
		t.Errorf("headers field of the wrong type: Headers = %#v, want empty", r.Headers)
	}
	r = decode(withHTTP(fbytes(13,
		fbytes(1, headerValue("Authorization", "Bearer a", nil)),
		fbytes(1, headerValue("AUTHORIZATION", "x", []byte("Bearer b"))),
		fbytes(1, headerValue("ÄÖ", "u", []byte{})),
		fbytes(1, headerValue(":Authority", "h.example", nil)))))
	want := map[string]string{"authorization": "Bearer a,Bearer b", "äö": "u", ":authority": "h.example"}
	if !reflect.DeepEqual(r.Headers, want) || r.Host != "h.example" {
		t.Errorf("header_map: %s", show(r))
	}
	r = decode(cat(withHTTP(fstr(2, "GET"), fbytes(3, entry("a", "1"))), withAttrs(fbytes(10, entry("k", "v"))), withHTTP(fstr(2, "POST"), fbytes(3, entry("a", "2")))))
	if r.Method != "POST" || r.Headers["a"] != "2" || r.ContextExtensions["k"] != "v" {
		t.Errorf("merge: %s", show(r))
	}
	r = decode(nil)
	if r.Headers == nil || r.ContextExtensions != nil || r.Body != nil {
		t.Errorf("empty: %s", show(r))
	}
	r = decode(withAttrs(fvarint(10, 1)))
	if r.ContextExtensions == nil || len(r.ContextExtensions) != 0 {
		t.Errorf("context_extensions of the wrong type: %s", show(r))
	}
	for _, b := range [][]byte{withHTTP(fstr(4, "/\xff")), withAttrs(fbytes(12, fstr(1, "\xff"))), {0x0a, 0x80}} {
		if err := wire.DecodeRequest(b, &r); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}

// TestDecodeRequestMutations runs the differential over every truncation,
// deletion and several single-byte replacements of a full request and of
// the realistic one: the errors proto.Unmarshal finds, at every position.
func TestDecodeRequestMutations(t *testing.T) {
	inputs := [][]byte{fullRequest(t, false), fullRequest(t, true), envoyBytes(t, check.MCPToolCall(resourceURI, testToken(t)))}
	vals := []byte{0x00, 0x01, 0x7f, 0x80, 0xff}
	if testing.Short() {
		vals = vals[3:]
	}
	n := 0
	for _, in := range inputs {
		for i := range in {
			differential(t, in[:i])
			differential(t, cat(in[:i], in[i+1:]))
			m := bytes.Clone(in)
			for _, v := range append(vals, in[i]^0x01, in[i]+1) {
				m[i] = v
				differential(t, m)
			}
			n += 3 + len(vals)
		}
	}
	t.Logf("%d inputs compared", n)
}

// nest builds a CheckRequest whose metadata_context holds a Value nested
// n times in the given wrappings (innermost first), inner being the
// innermost Value. It writes the message backwards, one wrapping at a time.
func nest(n int, inner []byte, wraps ...protowire.Number) []byte {
	rev := bytes.Clone(inner)
	slices.Reverse(rev)
	wrap := func(num protowire.Number) {
		hdr := protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.BytesType), uint64(len(rev)))
		slices.Reverse(hdr)
		rev = append(rev, hdr...)
	}
	for range n {
		for _, w := range wraps {
			wrap(w)
		}
	}
	// Value -> Struct entry value -> Struct -> Metadata entry value ->
	// Metadata -> AttributeContext.metadata_context -> CheckRequest.attributes.
	for _, w := range []protowire.Number{2, 1, 2, 1, 11, 1} {
		wrap(w)
	}
	slices.Reverse(rev)
	return rev
}

// groups nests n unknown groups in a CheckRequest, inside HttpRequest.
func groups(n int) []byte {
	var b []byte
	for range n {
		b = protowire.AppendTag(b, 50, protowire.StartGroupType)
	}
	for range n {
		b = protowire.AppendTag(b, 50, protowire.EndGroupType)
	}
	return withHTTP(b)
}

// TestDecodeRequestDepth checks the nesting limit where proto.Unmarshal
// has it: lists in lists (2 levels each), structs in structs (3 levels
// each: Struct, map entry, Value) and unknown groups (protowire's own
// limit).
func TestDecodeRequestDepth(t *testing.T) {
	cases := []struct {
		name  string
		build func(n int) []byte
	}{
		// ListValue.values, Value.list_value
		{"lists", func(n int) []byte { return nest(n, nil, 1, 6) }},
		// Struct entry value, Struct.fields, Value.struct_value
		{"structs", func(n int) []byte { return nest(n, nil, 2, 1, 5) }},
		{"groups", groups},
	}
	// The innermost Struct with an empty entry, or a fields field of the
	// wrong wire type: a map entry costs a level even so. Wrapped in 0, 1
	// and 2 lists (2 levels each) so that, one of the three, the limit
	// falls on the entry itself.
	for k := range 3 {
		for name, in := range map[string][]byte{"empty entry": fbytes(1), "entry of the wrong type": fvarint(1, 0)} {
			in = fbytes(5, in)
			for range k {
				in = fbytes(6, fbytes(1, in))
			}
			cases = append(cases, struct {
				name  string
				build func(n int) []byte
			}{fmt.Sprintf("%s in %d lists", name, k), func(n int) []byte { return nest(n, in, 2, 1, 5) }})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok := func(n int) bool {
				var m authv3.CheckRequest
				return proto.Unmarshal(c.build(n), &m) == nil
			}
			// Find the first n proto.Unmarshal rejects.
			lo, hi := 1, 1
			for ok(hi) {
				lo, hi = hi, hi*2
			}
			for hi-lo > 1 {
				if mid := (lo + hi) / 2; ok(mid) {
					lo = mid
				} else {
					hi = mid
				}
			}
			t.Logf("proto.Unmarshal accepts %d, rejects %d", lo, hi)
			for n := lo - 3; n <= hi+3; n++ {
				differential(t, c.build(n))
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { differential(t, b) })
}

func BenchmarkDecodeRequest(b *testing.B) {
	in := envoyBytes(b, check.MCPToolCall(resourceURI, testToken(b)))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var r authz.Request
		if err := wire.DecodeRequest(in, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProtoUnmarshalTranslate is what DecodeRequest replaces.
func BenchmarkProtoUnmarshalTranslate(b *testing.B) {
	in := envoyBytes(b, check.MCPToolCall(resourceURI, testToken(b)))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var m authv3.CheckRequest
		if err := proto.Unmarshal(in, &m); err != nil {
			b.Fatal(err)
		}
		_ = wire.Translate(&m)
	}
}
