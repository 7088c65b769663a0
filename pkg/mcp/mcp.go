// Package mcp tells the gateway what an MCP (Model Context Protocol) request
// asks for: the JSON-RPC method and, for the methods that address one object,
// the tool name, resource URI or prompt name. Per-method and per-tool rules
// are then matched with [Match].
//
// # Sources
//
// MCP revision 2026-07-28 (SEP-2243) has clients mirror every POSTed JSON-RPC
// request into two headers, Mcp-Method and Mcp-Name. Older clients send only
// the body, which Envoy forwards to the gateway when with_request_body is set.
// [Extract] reads both:
//
//   - With a body (len(Body) > 0) the body is authoritative, because it is
//     what the server acts on. When Mcp-Method is present the headers must
//     agree with the body exactly, or the request is refused with
//     [ErrMismatch]: a gateway that decided on a header while the server
//     executes a different body would be trivially bypassed.
//   - Without a body the headers are used as they are. Whether that is good
//     enough (the server must then itself check headers against the body, as
//     2026-07-28 servers do) is the caller's decision, e.g. by looking at
//     MCP-Protocol-Version.
//   - With neither, the operation is not Known.
//
// # Names
//
// Only these methods carry a name; every other method yields Name "":
//
//	tools/call, prompts/get                                   params.name
//	resources/read, resources/subscribe, resources/unsubscribe params.uri
//	tasks/get, tasks/update, tasks/cancel                      params.taskId
//
// The first five name their target. A body whose params lack the member
// (or that has no params), or headers naming such a method without
// Mcp-Name, yield the operation with NameMissing set and Name "": whoever
// decides on the name must refuse it, but a decision that does not depend
// on it may let the server answer (and refuse) it. A name that is present
// must be a non-empty string ([ErrBadBody]); Mcp-Name for a method of
// neither list is [ErrBadHeader]. The task methods are SEP-2663's: a
// 2026-07-28 client copies params.taskId into Mcp-Name so that an
// intermediary can route every request of a task to the instance that
// holds it. Their name is optional (the task methods of 2025-11-25 came
// without any Mcp-* header). When the body is seen, Mcp-Name must be
// present exactly when the body has the name, and equal to it, for every
// method. So Name != "" whenever the method is one of the first five and
// NameMissing is false, and for a task method when its task id is known.
//
// Tool and prompt names are compared byte for byte: no case folding, no
// Unicode normalisation, which is how servers look tools and prompts up. A
// name (in the body, or in Mcp-Name once decoded) holding a C0 control
// character (tab included), DEL or a C1 control (U+0080-U+009F) is refused
// ([ErrBadBody], [ErrBadHeader]). Resource URIs are replaced by their
// canonical form ([CanonicalURI]), after the headers have been checked
// against the body as sent; a URI without one is [ErrBadURI].
//
// # Headers
//
// Header values are trimmed of surrounding spaces and tabs (HTTP OWS). A
// value longer than [MaxHeaderBytes] (before trimming), empty after trimming,
// or containing a control character (other than tab), DEL or a non-ASCII byte
// is [ErrBadHeader]; non-ASCII names travel in the sentinel form, see
// [DecodeName]. Mcp-Method must in addition be a single token of visible
// ASCII (0x21-0x7E) that does not start with "=?": every MCP method is such a
// token, and a method that looks like an encoded word could be decoded by a
// server and not by the gateway. Mcp-Name without Mcp-Method is
// [ErrBadHeader].
//
// # Body
//
// The body must be one JSON-RPC 2.0 message object, in UTF-8 without a byte
// order mark, that is valid JSON (RFC 8259; nothing after the value but
// whitespace). Otherwise it is [ErrBadBody], except a JSON array, which is a
// batch and [ErrBatch] (MCP removed batching in 2025-06-18; a batch could hide
// a second call behind the first). Further:
//
//   - jsonrpc, when present, must be the string "2.0"; it may be absent.
//   - A request or notification has a string "method" that obeys the
//     Mcp-Method rules above (an empty or unusual method is no MCP method, and
//     one that no header could carry could never be checked against one).
//     A notification (no "id") is read like a request and marked
//     [Operation].Notification. "id" is a member the gateway reads (below):
//     whether a message is a request or a notification must not depend on
//     the parser.
//   - A response has no "method" but a "result" or "error"; its Method is "".
//     A message with both "method" and "result"/"error", or with neither, is
//     [ErrBadBody].
//   - For the five methods above, "params" must be an object and its
//     "name"/"uri" a non-empty string. Names may hold any character but
//     controls (see Names) and U+FFFD: after the UTF-8 check it can only come from a literal U+FFFD or
//     from an unpaired surrogate escape such as "\ud800", which parsers decode
//     differently (encoding/json turns it into U+FFFD, JavaScript keeps it).
//   - Parser differentials are refused rather than resolved. A member the
//     gateway reads ("jsonrpc", "method", "params", "result", "error", "id" and,
//     inside params, the name member) may appear only once, and no other
//     member may equal its name case-insensitively (Unicode simple folding,
//     which makes "paramſ" equal "params"). Parsers disagree on which
//     duplicate wins, and encoding/json matches struct fields
//     case-insensitively while JavaScript and Python do not, so
//     {"method":"tools/call","Method":"tools/list"} would otherwise be a
//     tools/list to one and a tools/call to the other. For that reason the body
//     is not decoded into a struct: it is checked with json.Valid and its
//     members are then walked directly; only string values with escapes go
//     through encoding/json.
//   - Members the gateway does not read (id, _meta, tool arguments, ...) are
//     skipped without being decoded. Nesting deeper than json.Valid accepts
//     (10000 levels) makes the body invalid.
//
// The package is over ~1,500 lines because resource-URI canonicalisation (uri*.go, about
// 800 lines) must live beside the matcher that compares against it: rules and requests are
// read by the one canonical form.
package mcp

import (
	"errors"
	"fmt"
)

// Operation is what an MCP request asks for.
type Operation struct {
	Method string // JSON-RPC method, "" for a response or when unknown
	Name   string // tool name, resource URI or prompt name; "" when the method has none
	Known  bool   // false when neither headers nor a body said anything
	// Notification: the body is a JSON-RPC notification (no "id"). Always
	// false without a body: headers do not say.
	Notification bool
	// NameMissing: the method names its target (tools/call, prompts/get,
	// resources/read, resources/subscribe, resources/unsubscribe) but the
	// request does not: no Mcp-Name header without a body, no params (or
	// no params member) in the body. Name is then "". Whoever decides on
	// the name must refuse such an operation; one whose decision does not
	// depend on the name may let the server answer it (it refuses it).
	NameMissing bool
}

// Input is what the proxy passed along.
type Input struct {
	MethodHeader, NameHeader       string // raw values
	HasMethodHeader, HasNameHeader bool
	Body                           []byte // nil: no body was sent to the gateway
}

// Errors returned by [Extract] and [DecodeName], possibly wrapped with a
// detail; test with errors.Is. Details never quote the offending value.
var (
	// ErrBadHeader: an Mcp-Method or Mcp-Name value that is not acceptable
	// (see the package documentation), or an inconsistent set of headers.
	ErrBadHeader = errors.New("mcp: invalid Mcp-Method or Mcp-Name header")
	// ErrBadBody: the body is not a single JSON-RPC message the gateway can
	// read unambiguously (see the package documentation).
	ErrBadBody = errors.New("mcp: body is not an acceptable JSON-RPC message")
	// ErrNotJSON, an ErrBadBody: the body is not JSON text in UTF-8 (a
	// JSON-RPC parse error rather than an invalid request).
	ErrNotJSON = fmt.Errorf("%w: not JSON", ErrBadBody)
	// ErrBatch: the body is a JSON array (a JSON-RPC batch), which is refused.
	ErrBatch = errors.New("mcp: JSON-RPC batch refused")
	// ErrTooLarge: the body is longer than the limit given to Extract.
	ErrTooLarge = errors.New("mcp: body larger than the limit")
	// ErrMismatch: Mcp-Method / Mcp-Name disagree with the body.
	ErrMismatch = errors.New("mcp: Mcp-Method/Mcp-Name headers disagree with the body")
)

// MaxHeaderBytes bounds the raw length of an Mcp-Method or Mcp-Name value,
// surrounding whitespace included. Tool and prompt names are short, but
// resource URIs can be long and the base64 sentinel adds a third, so the
// bound is 8 KiB, the usual per-field limit of HTTP servers. A name whose
// header form is longer cannot be carried in Mcp-Name; such a request is
// refused when the header is sent (a body alone is bounded only by maxBody).
const MaxHeaderBytes = 8192

func detail(kind error, what string) error { return fmt.Errorf("%w: %s", kind, what) }

// Extract returns the operation. With a non-empty body (len(Body) > 0) the
// body is authoritative, it is what the server acts on, and the headers, when
// Mcp-Method is present, must agree with it exactly: the same method, and
// Mcp-Name equal to the body's name (both absent counts as equal; one absent
// and the other present is a mismatch). Without a body the headers are used.
// maxBody bounds the body (<= 0: no limit).
//
// Checks run in this order and the first failure is returned, with a zero
// Operation: header syntax ([ErrBadHeader]), body size ([ErrTooLarge]), body
// content ([ErrBatch], [ErrBadBody]), agreement ([ErrMismatch]), resource
// URI ([ErrBadURI]). A resource URI is returned in its canonical form
// ([CanonicalURI]); agreement compares the values as sent. With neither
// headers nor a body the result is a zero Operation (Known false) and no
// error. The returned strings may share memory with in's header strings, never
// with in.Body.
func Extract(in Input, maxBody int) (Operation, error) {
	if in.HasNameHeader && !in.HasMethodHeader {
		return Operation{}, detail(ErrBadHeader, "Mcp-Name without Mcp-Method")
	}
	var hMethod, hName string
	if in.HasMethodHeader {
		v, err := headerValue(in.MethodHeader)
		if err != nil {
			return Operation{}, err
		}
		if !validMethod(v) {
			return Operation{}, detail(ErrBadHeader, "Mcp-Method is not a method token")
		}
		hMethod = v
	}
	if in.HasNameHeader {
		v, err := DecodeName(in.NameHeader)
		if err != nil {
			return Operation{}, err
		}
		hName = v
	}

	if len(in.Body) == 0 {
		if !in.HasMethodHeader {
			return Operation{}, nil
		}
		takesName := nameMember(hMethod) != ""
		if !takesName && in.HasNameHeader {
			return Operation{}, detail(ErrBadHeader, "Mcp-Name sent for a method without a name")
		}
		if nameRequired(hMethod) && !in.HasNameHeader {
			return Operation{Method: hMethod, Known: true, NameMissing: true}, nil
		}
		return canonical(Operation{Method: hMethod, Name: hName, Known: true})
	}

	if maxBody > 0 && len(in.Body) > maxBody {
		return Operation{}, ErrTooLarge
	}
	msg, err := parseBody(in.Body)
	if err != nil {
		return Operation{}, err
	}
	notification := msg.method != nil && !msg.hasID
	if !in.HasMethodHeader {
		return canonical(Operation{Method: internMethod(msg.method), Name: string(msg.name), Known: true, Notification: notification, NameMissing: msg.nameMissing})
	}
	// A response has method == nil; it never equals a (non-empty) header.
	// Method names are compared byte for byte: "Tools/call" is not
	// "tools/call" (header values are case-sensitive).
	if msg.method == nil || string(msg.method) != hMethod {
		return Operation{}, detail(ErrMismatch, "method")
	}
	if in.HasNameHeader != (msg.name != nil) || string(msg.name) != hName {
		return Operation{}, detail(ErrMismatch, "name")
	}
	// Equal to the body: reuse the header strings, no copy needed.
	return canonical(Operation{Method: hMethod, Name: hName, Known: true, Notification: notification, NameMissing: msg.nameMissing})
}

// canonical replaces a resource URI by its canonical form, the one rules,
// policies and the audit log see. It runs after the header/body agreement
// check, which compares the names exactly as sent.
func canonical(op Operation) (Operation, error) {
	if nameMember(op.Method) != "uri" || op.NameMissing {
		return op, nil
	}
	c, err := CanonicalURI(op.Name)
	if err != nil {
		return Operation{}, err
	}
	op.Name = c
	return op, nil
}

// nameMember returns the params member that holds the name for method:
// "name", "uri", "taskId", or "" when the method has no name.
func nameMember(method string) string {
	switch method {
	case "tools/call", "prompts/get":
		return "name"
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return "uri"
	case "tasks/get", "tasks/update", "tasks/cancel":
		return "taskId"
	}
	return ""
}

// nameRequired reports whether method must name its target (see Names in
// the package documentation); the task methods may omit it.
func nameRequired(method string) bool {
	switch nameMember(method) {
	case "name", "uri":
		return true
	}
	return false
}

// knownMethods interns the usual method names so that a body-only request
// does not allocate for its method.
var knownMethods = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{
		"initialize", "ping",
		"tools/list", "tools/call",
		"resources/list", "resources/templates/list", "resources/read",
		"resources/subscribe", "resources/unsubscribe",
		"prompts/list", "prompts/get",
		"tasks/get", "tasks/update", "tasks/cancel", "tasks/list", "subscriptions/listen",
		"completion/complete", "logging/setLevel",
		"notifications/initialized", "notifications/cancelled",
		"notifications/progress", "notifications/roots/list_changed",
	} {
		m[s] = s
	}
	return m
}()

// internMethod returns m as a string; "" for nil (a response).
func internMethod(m []byte) string {
	if s, ok := knownMethods[string(m)]; ok {
		return s
	}
	return string(m)
}

// validMethod reports whether m is a method token: non-empty, visible ASCII
// only (no space), and not starting with "=?" (the shape of an encoded word).
func validMethod[T string | []byte](m T) bool {
	if len(m) == 0 || (len(m) >= 2 && m[0] == '=' && m[1] == '?') {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 0x21 || m[i] > 0x7e {
			return false
		}
	}
	return true
}
