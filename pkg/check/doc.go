// Package check is the Envoy side of the gateway: it implements
// envoy.service.auth.v3.Authorization/Check, reading a CheckRequest into
// an authz.Request and rendering an authz.Decision as a CheckResponse.
//
// It makes no decisions, and writes no denial of its own: every answer,
// the ones it gives before the engine sees the request included (an
// undecodable CheckRequest, one over the header limits, an internal
// error), comes from authz's denial table (authz.Refusal). Everything
// below it works on plain Go values and never sees an Envoy type.
//
// The protobuf codec is in internal/wire: the hand-written decoder of the
// request the gRPC service uses (wire.DecodeRequest), the typed
// translation it is tested against and Server.Check uses
// (wire.Translate), and the hand-written encoder of the allowed response
// (ServerCodec).
package check
