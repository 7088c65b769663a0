package wire

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// msgNames names the messages of the schemas table.
var msgNames = [numMsgs]protoreflect.FullName{
	mCheckRequest:         "envoy.service.auth.v3.CheckRequest",
	mAttributeContext:     "envoy.service.auth.v3.AttributeContext",
	mPeer:                 "envoy.service.auth.v3.AttributeContext.Peer",
	mAddress:              "envoy.config.core.v3.Address",
	mSocketAddress:        "envoy.config.core.v3.SocketAddress",
	mPipe:                 "envoy.config.core.v3.Pipe",
	mEnvoyInternalAddress: "envoy.config.core.v3.EnvoyInternalAddress",
	mRequest:              "envoy.service.auth.v3.AttributeContext.Request",
	mTimestamp:            "google.protobuf.Timestamp",
	mHTTPRequest:          "envoy.service.auth.v3.AttributeContext.HttpRequest",
	mHeaderMap:            "envoy.config.core.v3.HeaderMap",
	mHeaderValue:          "envoy.config.core.v3.HeaderValue",
	mEnvoyMetadata:        "envoy.config.core.v3.Metadata",
	mStruct:               "google.protobuf.Struct",
	mValue:                "google.protobuf.Value",
	mListValue:            "google.protobuf.ListValue",
	mAny:                  "google.protobuf.Any",
	mTLSSession:           "envoy.service.auth.v3.AttributeContext.TLSSession",
}

// TestSchemasMatchDescriptors checks the decoder's table against the
// generated descriptors of the linked go-control-plane: every message
// CheckRequest reaches is in the table, and every field's kind (string,
// message, map) is what the table says. It also checks the assumptions
// that keep the table this small: proto3 only (strings always validated,
// no required fields), no extensions, no groups, no repeated scalars
// (whose packed form would need validating), maps keyed by string.
func TestSchemasMatchDescriptors(t *testing.T) {
	byName := map[protoreflect.FullName]msgID{}
	for id, n := range msgNames {
		byName[n] = msgID(id)
	}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		id, ok := byName[md.FullName()]
		if !ok {
			t.Errorf("%s is reached from CheckRequest but not in the decoder's table", md.FullName())
			return
		}
		if md.Syntax() != protoreflect.Proto3 {
			t.Errorf("%s: syntax %v, the decoder assumes proto3", md.FullName(), md.Syntax())
		}
		if md.ExtensionRanges().Len() > 0 || md.RequiredNumbers().Len() > 0 {
			t.Errorf("%s: extensions or required fields", md.FullName())
		}
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			want := field{}
			var next protoreflect.MessageDescriptor
			switch {
			case fd.IsMap():
				if fd.MapKey().Kind() != protoreflect.StringKind {
					t.Errorf("%s: map key %v", fd.FullName(), fd.MapKey().Kind())
				}
				switch v := fd.MapValue(); v.Kind() {
				case protoreflect.StringKind:
					want = fMapString
				case protoreflect.MessageKind:
					next = v.Message()
					want = fMapMsg(byName[next.FullName()])
				default:
					t.Errorf("%s: map value %v not supported by the decoder", fd.FullName(), v.Kind())
				}
			case fd.Kind() == protoreflect.GroupKind:
				t.Errorf("%s: group field", fd.FullName())
			case fd.Kind() == protoreflect.MessageKind:
				next = fd.Message()
				want = fMessage(byName[next.FullName()])
			case fd.Kind() == protoreflect.StringKind:
				if fd.IsList() {
					t.Errorf("%s: repeated string not supported by the decoder", fd.FullName())
				}
				want = fString
			case fd.IsList():
				t.Errorf("%s: repeated scalar (packed form) not supported by the decoder", fd.FullName())
			}
			if got := schemaField(id, fd.Number()); got != want {
				t.Errorf("%s (%d): table says %+v, descriptor %+v", fd.FullName(), fd.Number(), got, want)
			}
			if next != nil {
				walk(next)
			}
		}
		// No entry in the table for a number the message does not have.
		for num, f := range schemas[id] {
			if f != (field{}) && fs.ByNumber(protowire.Number(num)) == nil {
				t.Errorf("%s: table has field %d, the message has not", md.FullName(), num)
			}
		}
	}
	walk((&authv3.CheckRequest{}).ProtoReflect().Descriptor())
	for _, n := range msgNames {
		if !seen[n] {
			t.Errorf("%s is in the table but not reached from CheckRequest", n)
		}
	}
}
