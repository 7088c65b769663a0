package wire

// This file is long because it is one table-driven decoder: the message
// schema, the walk and the limits it enforces on attacker bytes read together.

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/extauthz/extauthz/pkg/authz"
)

// DecodeRequest reads the wire bytes of an envoy.service.auth.v3.CheckRequest
// straight into r, without building the message: r ends up exactly as
// Translate(msg) after proto.Unmarshal(b, msg), and DecodeRequest fails exactly
// when proto.Unmarshal does.
//
// Exactness means following the protobuf rules for every input, not only
// for what Envoy sends:
//   - a singular message field that occurs more than once is merged (the
//     later occurrence is parsed into the same message), a scalar or string
//     takes its last value, a repeated field appends and a map entry
//     overrides an earlier one with the same key; a map entry without key or
//     value reads as "";
//   - a field of the wrong wire type is an unknown field, and unknown fields
//     (groups included) are skipped; a map field present at all, even with
//     the wrong wire type, makes the map non-nil (so a headers field of the
//     wrong type still hides header_map, as it does for Translate);
//   - every string field of every message CheckRequest reaches must be
//     valid UTF-8 (proto3), even those Translate ignores, and nesting is
//     bounded as proto.Unmarshal bounds it (protowire.DefaultRecursionLimit,
//     counting each message and each map entry).
//
// It also fails, with authz.ErrHeaderLimits, exactly when HeaderLimits
// refuses what Translate gives for a message proto.Unmarshal accepts; a wire
// error comes first. Past the limits it stops keeping headers (it still
// checks the rest of the message), so a request of a million headers
// costs no map of a million entries, and it merges repeated header_map
// entries in linear time.
//
// Which fields are strings, messages and maps is the table below (schemas),
// checked against the generated descriptors by the package's tests; the
// rules are those of the linked google.golang.org/protobuf, which the
// differential tests and FuzzDecodeRequest hold DecodeRequest to.
//
// r's strings and Body never alias b: b may be a buffer gRPC reuses. On
// error *r is the zero Request.
func DecodeRequest(b []byte, r *authz.Request) error {
	var d decoder
	// proto.Unmarshal starts at the limit and spends one level on the
	// top-level message itself.
	if err := d.walk(b, mCheckRequest, protowire.DefaultRecursionLimit-1); err != nil {
		*r = authz.Request{}
		return err
	}
	if d.overLimits() {
		*r = authz.Request{}
		return authz.ErrHeaderLimits
	}
	d.finish(r)
	return nil
}

// The ways a CheckRequest fails to decode, each an authz.ErrUndecodable:
// the denial table's 400.
var (
	errWire  = fmt.Errorf("%w: CheckRequest: invalid wire format", authz.ErrUndecodable)
	errUTF8  = fmt.Errorf("%w: CheckRequest: string field is not valid UTF-8", authz.ErrUndecodable)
	errDepth = fmt.Errorf("%w: CheckRequest: exceeds maximum nesting depth", authz.ErrUndecodable)
)

// msgID names one message type CheckRequest reaches.
type msgID uint8

const (
	mCheckRequest msgID = iota
	mAttributeContext
	mPeer
	mAddress
	mSocketAddress
	mPipe
	mEnvoyInternalAddress
	mRequest
	mTimestamp
	mHTTPRequest
	mHeaderMap
	mHeaderValue
	mEnvoyMetadata
	mStruct
	mValue
	mListValue
	mAny
	mTLSSession
	numMsgs
)

// kind is what decoding a field involves beyond its wire type.
type kind uint8

const (
	kOther     kind = iota // scalars and bytes: the wire type says it all
	kString                // proto3 string: must be valid UTF-8
	kMessage               // a message: parsed (and validated) in turn
	kMapString             // map<string, string>
	kMapMsg                // map<string, message>
)

type field struct {
	kind kind
	msg  msgID // for kMessage and kMapMsg
}

var (
	fString    = field{kind: kString}
	fMapString = field{kind: kMapString}
)

func fMessage(m msgID) field { return field{kind: kMessage, msg: m} }
func fMapMsg(m msgID) field  { return field{kind: kMapMsg, msg: m} }

// schemas lists, per message and by field number, the fields whose
// decoding can fail beyond their wire format: strings, messages and maps.
// Any other field number (scalars, bytes, numbers the message does not
// have) is skipped by its wire type. The messages are those of
// go-control-plane's envoy.service.auth.v3 and what they use; the tests
// compare this table with the generated descriptors.
var schemas = [numMsgs][]field{
	mCheckRequest: {1: fMessage(mAttributeContext)},
	mAttributeContext: {
		1: fMessage(mPeer), 2: fMessage(mPeer), 4: fMessage(mRequest),
		10: fMapString, 11: fMessage(mEnvoyMetadata), 12: fMessage(mTLSSession), 13: fMessage(mEnvoyMetadata),
	},
	mPeer:                 {1: fMessage(mAddress), 2: fString, 3: fMapString, 4: fString, 5: fString},
	mAddress:              {1: fMessage(mSocketAddress), 2: fMessage(mPipe), 3: fMessage(mEnvoyInternalAddress)},
	mSocketAddress:        {2: fString, 4: fString, 5: fString, 7: fString},
	mPipe:                 {1: fString},
	mEnvoyInternalAddress: {1: fString, 2: fString},
	mRequest:              {1: fMessage(mTimestamp), 2: fMessage(mHTTPRequest)},
	mTimestamp:            {},
	mHTTPRequest: {
		1: fString, 2: fString, 3: fMapString, 4: fString, 5: fString, 6: fString,
		7: fString, 8: fString, 10: fString, 11: fString, 13: fMessage(mHeaderMap),
	},
	mHeaderMap:     {1: fMessage(mHeaderValue)},
	mHeaderValue:   {1: fString, 2: fString},
	mEnvoyMetadata: {1: fMapMsg(mStruct), 2: fMapMsg(mAny)},
	mStruct:        {1: fMapMsg(mValue)},
	mValue:         {3: fString, 5: fMessage(mStruct), 6: fMessage(mListValue)},
	mListValue:     {1: fMessage(mValue)},
	mAny:           {1: fString},
	mTLSSession:    {1: fString},
}

func schemaField(m msgID, num protowire.Number) field {
	if s := schemas[m]; int(num) < len(s) {
		return s[num]
	}
	return field{}
}

// consumeTag reads a field's tag. As proto.Unmarshal, it rejects field
// numbers outside 1..MaxValidNumber.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		num := protowire.Number(b[0] >> 3)
		if num == 0 {
			return 0, 0, -1
		}
		return num, protowire.Type(b[0] & 7), 1
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, n
	}
	num := v >> 3
	if num < uint64(protowire.MinValidNumber) || num > uint64(protowire.MaxValidNumber) {
		return 0, 0, -1
	}
	return protowire.Number(num), protowire.Type(v & 7), n
}

// consumeString reads a length-delimited string and checks its UTF-8.
func consumeString(b []byte) ([]byte, int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, errWire
	}
	if !utf8.Valid(v) {
		return nil, 0, errUTF8
	}
	return v, n, nil
}

// decoder collects what Translate reads. The byte slices alias the input
// until finish copies them.
type decoder struct {
	method, scheme, host, path []byte
	body, rawBody              []byte
	// headers is the headers map, non-nil once the field was seen; raw is
	// header_map merged as Translate's headerMap merges it, the values of
	// names seen more than once being in joined until finish.
	headers, raw map[string]string
	joined       map[string][]byte
	ctxExt       map[string]string
	// headersOver: headers reached more than MaxHeaders names, and stopped
	// taking new ones. rawOver: the same, or more than MaxHeaderBytes
	// (rawBytes, which only grows), for raw.
	headersOver, rawOver bool
	rawBytes             int
	// The names of headers and raw that hold "_", recorded as they are
	// added, so the decision need not scan the map for them.
	headersUnderscored, rawUnderscored []string
	// The HeaderValue being read (HeaderValue nests nothing).
	hkey, hval, hraw []byte
}

// walk reads message m, keeping what Translate reads and checking the
// rest as proto.Unmarshal would while storing it. depth is what is left of
// the nesting budget inside m.
func (d *decoder) walk(b []byte, m msgID, depth int) error {
	for all := b; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		n, err := d.field(m, all, num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// field consumes the value of field num of message m, whose tag was just
// read, from b; all is the whole of m.
func (d *decoder) field(m msgID, all []byte, num protowire.Number, typ protowire.Type, b []byte, depth int) (int, error) {
	f := schemaField(m, num)
	switch f.kind {
	case kString:
		if typ == protowire.BytesType {
			v, n, err := consumeString(b)
			if p := d.dst(m, num); p != nil {
				*p = v
			}
			return n, err
		}
	case kMessage:
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, errWire
			}
			if depth < 1 {
				return 0, errDepth
			}
			if m == mHeaderMap { // headers (repeated)
				return n, d.header(all, v)
			}
			return n, d.walk(v, f.msg, depth-1)
		}
	case kMapString, kMapMsg:
		keep := d.strMap(m, num, all)
		// A map entry costs a level, checked before the wire type.
		if depth < 1 {
			return 0, errDepth
		}
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, errWire
			}
			k, val, err := d.entry(v, f, depth-1)
			if err == nil && keep != nil {
				if m == mHTTPRequest { // headers: common names shared
					d.addHeader(k, val)
				} else {
					keep[string(k)] = string(val)
				}
			}
			return n, err
		}
	case kOther:
		// Bytes fields: no UTF-8 to check.
		if p := d.dst(m, num); p != nil && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, errWire
			}
			*p = v
			return n, nil
		}
	}
	// Unknown, or of the wrong wire type: skipped as an unknown field.
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, errWire
	}
	return n, nil
}

// dst is where the decoder keeps string or bytes field num of m, or nil.
func (d *decoder) dst(m msgID, num protowire.Number) *[]byte {
	switch m {
	case mHTTPRequest:
		switch num {
		case 2:
			return &d.method
		case 4:
			return &d.path
		case 5:
			return &d.host
		case 6:
			return &d.scheme
		case 11:
			return &d.body
		case 12: // raw_body
			return &d.rawBody
		}
	case mHeaderValue:
		switch num {
		case 1:
			return &d.hkey
		case 2:
			return &d.hval
		case 3: // raw_value
			return &d.hraw
		}
	}
	return nil
}

// strMap is the map the decoder keeps map field num of m in, or nil. A
// kept map is made when the field is first seen, whatever its wire type;
// all (the whole of m) sizes it.
func (d *decoder) strMap(m msgID, num protowire.Number, all []byte) map[string]string {
	switch {
	case m == mAttributeContext && num == 10: // context_extensions
		if d.ctxExt == nil {
			d.ctxExt = make(map[string]string)
		}
		return d.ctxExt
	case m == mHTTPRequest && num == 3: // headers
		if d.headers == nil {
			d.headers = make(map[string]string, min(countField(all, 3), MaxHeaders))
		}
		return d.headers
	}
	return nil
}

// entry reads an entry of map field f: key and, for map<string, string>,
// value, "" when absent, the last occurrence winning. depth is what is left
// inside the entry.
func (d *decoder) entry(b []byte, f field, depth int) (key, val []byte, err error) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, nil, errWire
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			if num == 2 && f.kind == kMapMsg {
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return nil, nil, errWire
				}
				if depth < 1 {
					return nil, nil, errDepth
				}
				if err := d.walk(v, f.msg, depth-1); err != nil {
					return nil, nil, err
				}
				b = b[n:]
				continue
			}
			v, n, err := consumeString(b)
			if err != nil {
				return nil, nil, err
			}
			if num == 1 {
				key = v
			} else {
				val = v
			}
			b = b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return nil, nil, errWire
		}
		b = b[n:]
	}
	return key, val, nil
}

// addHeader keeps an entry of the headers map, unless it would be the
// name past MaxHeaders.
func (d *decoder) addHeader(k, val []byte) {
	if d.headersOver {
		return
	}
	_, seen := d.headers[string(k)]
	if !seen && len(d.headers) >= MaxHeaders {
		d.headersOver = true
		return
	}
	name := headerName(k)
	d.headers[name] = string(val)
	if !seen && strings.IndexByte(name, '_') >= 0 {
		d.headersUnderscored = append(d.headersUnderscored, name)
	}
}

// header reads one HeaderValue of HeaderMap all and merges it into d.raw
// as Translate's headerMap does: lower-cased name, raw_value over value
// when not empty, repeated names joined with ",". Past the limits it only
// checks the entry.
func (d *decoder) header(all, b []byte) error {
	if d.raw == nil {
		d.raw = make(map[string]string, min(countField(all, 1), MaxHeaders))
	}
	d.hkey, d.hval, d.hraw = nil, nil, nil
	// HeaderValue has no message or map field: no depth to spend.
	if err := d.walk(b, mHeaderValue, 0); err != nil {
		return err
	}
	if d.rawOver {
		return nil
	}
	k := lowerHeaderName(d.hkey)
	val := d.hval
	if len(d.hraw) > 0 {
		val = d.hraw
	}
	prev, seen := d.raw[k]
	if !seen {
		d.rawBytes += len(k) + len(val)
	} else {
		d.rawBytes += 1 + len(val)
	}
	if d.rawBytes > MaxHeaderBytes || (!seen && len(d.raw) >= MaxHeaders) {
		d.rawOver = true
		return nil
	}
	if !seen {
		d.raw[k] = string(val)
		if strings.IndexByte(k, '_') >= 0 {
			d.rawUnderscored = append(d.rawUnderscored, k)
		}
		return nil
	}
	// Appended to a buffer, not concatenated: n entries of one name must
	// not cost n copies of the growing value.
	if d.joined == nil {
		d.joined = make(map[string][]byte)
	}
	buf, ok := d.joined[k]
	if !ok {
		buf = append(make([]byte, 0, 2*(len(prev)+1+len(val))), prev...)
	}
	d.joined[k] = append(append(buf, ','), val...)
	return nil
}

// overLimits reports whether the headers Translate would use are over
// MaxHeaders or MaxHeaderBytes, as HeaderLimits would find.
func (d *decoder) overLimits() bool {
	if d.headers != nil {
		return d.headersOver || headerBytes(d.headers) > MaxHeaderBytes
	}
	return d.rawOver
}

// countField counts the occurrences of field num in a message, to size a
// map once; it stops quietly at malformed input, which the decoding proper
// reports.
func countField(b []byte, num protowire.Number) int {
	c := 0
	for len(b) > 0 {
		n2, typ, n := consumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if n2 == num {
			c++
		}
		if n = protowire.ConsumeFieldValue(n2, typ, b); n < 0 {
			break
		}
		b = b[n:]
	}
	return c
}

// finish copies what was read into r, then applies Translate's fallbacks.
func (d *decoder) finish(r *authz.Request) {
	*r = authz.Request{
		Method:            string(d.method),
		Scheme:            string(d.scheme),
		Host:              string(d.host),
		Path:              string(d.path),
		Headers:           d.headers,
		ContextExtensions: d.ctxExt,
		Underscored:       d.headersUnderscored,
		UnderscoredKnown:  true,
	}
	if r.Headers == nil {
		r.Underscored = d.rawUnderscored
		for k, v := range d.joined {
			d.raw[k] = string(v)
		}
		r.Headers = d.raw
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
	}
	if len(d.rawBody) > 0 {
		r.Body = append([]byte(nil), d.rawBody...)
	} else if len(d.body) > 0 {
		r.Body = append([]byte(nil), d.body...)
	}
	pseudoHeaderFallbacks(r) // the same fallbacks as Translate
}
