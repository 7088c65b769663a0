// Package wire is the hand-written protobuf codec of the Check service:
// the decoder of envoy.service.auth.v3.CheckRequest (DecodeRequest) and
// the encoder of an allowed CheckResponse (AllowedSize, AppendAllowed,
// DynamicMetadataField). pkg/check is its only user.
//
// It exists for speed, measured (go test -bench . -benchmem on this
// package and on pkg/check): on the request Envoy sends for an MCP
// tools/call, DecodeRequest makes 24 allocations where proto.Unmarshal
// then Translate makes 126, in a third to a half of the time
// (BenchmarkDecodeRequest, BenchmarkProtoUnmarshalTranslate); over gRPC
// a cache-hit Check costs 313 allocations through Register against 414
// through the generated service (BenchmarkCheckGRPCCacheHitAB). Writing
// the allowed response by hand skips protobuf reflection, and writing the
// dynamic metadata as bytes the thirty or so allocations of building it as
// a Struct (BenchmarkMarshalAllowed: half the time of the protobuf codec).
//
// What it must agree with, and the tests that hold it to it:
//   - DecodeRequest gives exactly the authz.Request that Translate, the
//     typed translation through go-control-plane's generated messages,
//     gives after proto.Unmarshal, and fails exactly when proto.Unmarshal
//     or HeaderLimits does. Translate is the reference: the differential
//     tests and FuzzDecodeRequest compare the two on every input, and the
//     schema table is checked against the generated descriptors.
//     Translate also serves production, for a request that arrives as a
//     message already (check.Server.Check, an interceptor's replacement
//     request); the gRPC service decodes wire bytes with DecodeRequest.
//   - AppendAllowed writes byte for byte what proto.Marshal writes for the
//     same message, and AllowedSize sends every message it does not know
//     how to write to the protobuf codec (pkg/check's marshal tests).
//   - DynamicMetadataField reads back as the google.protobuf.Struct built
//     the ordinary way (pkg/check's response tests).
package wire
