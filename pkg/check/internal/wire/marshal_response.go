package wire

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// AllowedSize is the size of resp on the wire, when resp has the shape
// check.Answer gives an allowed request: a status with at most a code, an
// ok_response with only headers (each a header with a key and a value, and
// an append_action) and headers_to_remove, and unknown fields (the dynamic
// metadata). Anything else, or a string proto.Marshal would reject as
// invalid UTF-8, gives -1: the protobuf codec marshals it instead.
func AllowedSize(resp *authv3.CheckResponse) int {
	st := resp.GetStatus()
	okr := resp.GetOkResponse()
	if st == nil || okr == nil || resp.DynamicMetadata != nil ||
		st.Message != "" || st.Details != nil || len(st.ProtoReflect().GetUnknown()) > 0 ||
		okr.DynamicMetadata != nil || okr.ResponseHeadersToAdd != nil ||
		okr.QueryParametersToSet != nil || okr.QueryParametersToRemove != nil ||
		len(okr.ProtoReflect().GetUnknown()) > 0 {
		return -1
	}
	okSize := 0
	for _, h := range okr.Headers {
		if h == nil || h.Header == nil || h.Append != nil || h.KeepEmptyValue ||
			len(h.ProtoReflect().GetUnknown()) > 0 {
			return -1
		}
		hv := h.Header
		if hv.RawValue != nil || len(hv.ProtoReflect().GetUnknown()) > 0 ||
			!utf8.ValidString(hv.Key) || !utf8.ValidString(hv.Value) {
			return -1
		}
		okSize += 1 + protowire.SizeBytes(headerValueOptionSize(h))
	}
	for _, s := range okr.HeadersToRemove {
		if !utf8.ValidString(s) {
			return -1
		}
		okSize += 1 + protowire.SizeBytes(len(s))
	}
	return 1 + protowire.SizeBytes(statusSize(st.Code)) + 1 + protowire.SizeBytes(okSize) +
		len(resp.ProtoReflect().GetUnknown())
}

// AppendAllowed appends resp, for which AllowedSize is not -1, to b exactly
// as proto.Marshal writes it: fields by number, unknown fields last.
func AppendAllowed(b []byte, resp *authv3.CheckResponse) []byte {
	st := resp.Status
	okr := resp.GetOkResponse()
	okSize := 0
	for _, h := range okr.Headers {
		okSize += 1 + protowire.SizeBytes(headerValueOptionSize(h))
	}
	for _, s := range okr.HeadersToRemove {
		okSize += 1 + protowire.SizeBytes(len(s))
	}
	stSize := statusSize(st.Code)

	// status = 1
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(stSize))
	if st.Code != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(st.Code)))
	}
	// ok_response = 3
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(okSize))
	for _, h := range okr.Headers { // headers = 2
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(headerValueOptionSize(h)))
		hv := h.Header
		b = protowire.AppendTag(b, 1, protowire.BytesType) // header = 1
		b = protowire.AppendVarint(b, uint64(headerValueSize(hv)))
		if hv.Key != "" {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, hv.Key)
		}
		if hv.Value != "" {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, hv.Value)
		}
		if h.AppendAction != 0 { // append_action = 3
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(h.AppendAction)))
		}
	}
	for _, s := range okr.HeadersToRemove { // headers_to_remove = 5
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return append(b, resp.ProtoReflect().GetUnknown()...)
}

func statusSize(code int32) int {
	if code == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(int64(code)))
}

func headerValueSize(hv *corev3.HeaderValue) int {
	n := 0
	if hv.Key != "" {
		n += 1 + protowire.SizeBytes(len(hv.Key))
	}
	if hv.Value != "" {
		n += 1 + protowire.SizeBytes(len(hv.Value))
	}
	return n
}

func headerValueOptionSize(h *corev3.HeaderValueOption) int {
	n := 1 + protowire.SizeBytes(headerValueSize(h.Header))
	if h.AppendAction != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(h.AppendAction)))
	}
	return n
}
