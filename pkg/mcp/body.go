package mcp

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Member names the gateway reads. Top-level ones are in topKeys order.
var (
	topKeys = [...][]byte{
		[]byte("jsonrpc"),
		[]byte("method"),
		[]byte("params"),
		[]byte("result"),
		[]byte("error"),
		[]byte("id"),
	}
	keyName   = []byte("name")
	keyURI    = []byte("uri")
	keyTaskID = []byte("taskId")

	bom     = []byte{0xef, 0xbb, 0xbf}
	fffd    = []byte(string(utf8.RuneError))
	version = []byte("2.0")
)

const (
	topJSONRPC = iota
	topMethod
	topParams
	topResult
	topError
	topID
)

// message is what parseBody reads from a JSON-RPC message.
type message struct {
	method []byte // nil for a response
	name   []byte // nil when the method has none, or (tasks/*) the body has none
	hasID  bool   // the message has an "id" member: not a notification
	// nameMissing: the method names its target, but the message has no
	// params or no such member in them (name is nil).
	nameMissing bool
}

// parseBody reads a JSON-RPC message (see the package documentation for the
// rules). It returns the decoded method, nil for a response, and the decoded
// name, nil when the method has none. Both may alias b.
func parseBody(b []byte) (message, error) {
	if bytes.HasPrefix(b, bom) {
		return message{}, detail(ErrNotJSON, "byte order mark")
	}
	if !utf8.Valid(b) {
		return message{}, detail(ErrNotJSON, "not UTF-8")
	}
	if !json.Valid(b) {
		return message{}, detail(ErrNotJSON, "not JSON")
	}
	i := skipWS(b, 0)
	switch b[i] { // json.Valid: there is a value, so i < len(b)
	case '[':
		return message{}, ErrBatch
	case '{':
	default:
		return message{}, detail(ErrBadBody, "not an object")
	}

	var top [len(topKeys)][]byte // raw values; nil: absent
	if err := walkObject(b, i, func(key, val []byte) error {
		return pick(key, val, topKeys[:], top[:])
	}); err != nil {
		return message{}, err
	}
	m, err := readMessage(&top)
	m.hasID = top[topID] != nil
	return m, err
}

// readMessage reads the method and name from the top-level members.
func readMessage(top *[len(topKeys)][]byte) (message, error) {
	var m message

	if raw := top[topJSONRPC]; raw != nil {
		v, err := stringValue(raw)
		if err != nil || !bytes.Equal(v, version) {
			return message{}, detail(ErrBadBody, `jsonrpc is not "2.0"`)
		}
	}
	isResponse := top[topResult] != nil || top[topError] != nil
	if top[topMethod] == nil {
		if !isResponse {
			return message{}, detail(ErrBadBody, "neither a request nor a response")
		}
		return m, nil
	}
	if isResponse {
		return message{}, detail(ErrBadBody, "both a request and a response")
	}
	method, err := stringValue(top[topMethod])
	if err != nil {
		return message{}, detail(ErrBadBody, "method is not a string")
	}
	if !validMethod(method) {
		return message{}, detail(ErrBadBody, "method is not a method token")
	}

	m.method = method
	var want []byte
	switch nameMember(string(method)) {
	case "":
		return m, nil
	case "name":
		want = keyName
	case "uri":
		want = keyURI
	default:
		want = keyTaskID
	}
	optional := !nameRequired(string(method))
	params := top[topParams]
	if params == nil {
		m.nameMissing = !optional
		return m, nil
	}
	if params[0] != '{' {
		return message{}, detail(ErrBadBody, "params is not an object")
	}
	var raw [1][]byte
	if err := walkObject(params, 0, func(key, val []byte) error {
		return pick(key, val, [][]byte{want}, raw[:])
	}); err != nil {
		return message{}, err
	}
	if raw[0] == nil {
		m.nameMissing = !optional
		return m, nil
	}
	name, err := stringValue(raw[0])
	if err != nil {
		return message{}, detail(ErrBadBody, "params."+string(want)+" is not a string")
	}
	if len(name) == 0 {
		return message{}, detail(ErrBadBody, "params."+string(want)+" is empty")
	}
	if bytes.Contains(name, fffd) {
		return message{}, detail(ErrBadBody, "params."+string(want)+" holds U+FFFD or an unpaired surrogate")
	}
	if !validName(name) {
		return message{}, detail(ErrBadBody, "params."+string(want)+" holds a control character")
	}
	m.name = name
	return m, nil
}

// pick stores val in vals[k] when key is keys[k]. A repeated key, or one that
// equals a key only case-insensitively, is an ambiguity and an error.
func pick(key, val []byte, keys, vals [][]byte) error {
	for k, want := range keys {
		if bytes.Equal(key, want) {
			if vals[k] != nil {
				return detail(ErrBadBody, "duplicate member "+string(want))
			}
			vals[k] = val
			return nil
		}
		if bytes.EqualFold(key, want) {
			return detail(ErrBadBody, "member name differs from "+string(want)+" only in case")
		}
	}
	return nil
}

// stringValue decodes raw, a JSON value, when it is a string.
func stringValue(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, ErrBadBody
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, ErrBadBody
	}
	return []byte(s), nil
}

// walkObject calls fn with the decoded name and the raw value of each member
// of the object that starts at b[i]. b must have passed json.Valid; the walk
// still fails rather than panics on anything unexpected.
func walkObject(b []byte, i int, fn func(key, val []byte) error) error {
	if i >= len(b) || b[i] != '{' {
		return detail(ErrBadBody, "malformed object")
	}
	i++
	for {
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
		if i >= len(b) {
			return detail(ErrBadBody, "malformed object")
		}
		if b[i] == '}' {
			return nil
		}
		end := scanString(b, i)
		if end < 0 {
			return detail(ErrBadBody, "malformed object")
		}
		key, err := stringValue(b[i:end])
		if err != nil {
			return detail(ErrBadBody, "malformed member name")
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return detail(ErrBadBody, "malformed object")
		}
		i = skipWS(b, i+1)
		end = skipValue(b, i)
		if end < 0 {
			return detail(ErrBadBody, "malformed object")
		}
		if err := fn(key, b[i:end]); err != nil {
			return err
		}
		i = end
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString returns the index just past the string that starts at b[i], or
// -1.
func scanString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the value that starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = scanString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// MaxIDBytes bounds the JSON text of a request id that [RequestID] returns;
// a longer id is answered as null rather than echoed.
const MaxIDBytes = 256

// RequestID returns the "id" of a JSON-RPC request body as JSON text, for
// the error response that refuses it (JSON-RPC 2.0 §5: the id of the
// request, or null when it cannot be determined). It is "null" unless body
// is one JSON object with exactly one member named "id" whose value is a
// string or a number of at most [MaxIDBytes] bytes of JSON text. The text
// is the body's own, which json.Valid accepted, so it can be written into a
// JSON document as it is. It is used on the refusal path only.
func RequestID(body []byte) string {
	const null = "null"
	if len(body) == 0 || !json.Valid(body) {
		return null
	}
	i := skipWS(body, 0)
	if body[i] != '{' {
		return null
	}
	var id []byte
	n := 0
	if err := walkObject(body, i, func(key, val []byte) error {
		if string(key) == "id" {
			id, n = val, n+1
		}
		return nil
	}); err != nil || n != 1 || len(id) > MaxIDBytes {
		return null
	}
	if c := id[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
		return null
	}
	return string(id)
}
