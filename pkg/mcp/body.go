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
	}
	keyName = []byte("name")
	keyURI  = []byte("uri")

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
)

// parseBody reads a JSON-RPC message (see the package documentation for the
// rules). It returns the decoded method, nil for a response, and the decoded
// name, nil when the method has none. Both may alias b.
func parseBody(b []byte) (method, name []byte, err error) {
	if bytes.HasPrefix(b, bom) {
		return nil, nil, detail(ErrBadBody, "byte order mark")
	}
	if !utf8.Valid(b) {
		return nil, nil, detail(ErrBadBody, "not UTF-8")
	}
	if !json.Valid(b) {
		return nil, nil, detail(ErrBadBody, "not JSON")
	}
	i := skipWS(b, 0)
	switch b[i] { // json.Valid: there is a value, so i < len(b)
	case '[':
		return nil, nil, ErrBatch
	case '{':
	default:
		return nil, nil, detail(ErrBadBody, "not an object")
	}

	var top [len(topKeys)][]byte // raw values; nil: absent
	if err := walkObject(b, i, func(key, val []byte) error {
		return pick(key, val, topKeys[:], top[:])
	}); err != nil {
		return nil, nil, err
	}

	if raw := top[topJSONRPC]; raw != nil {
		v, err := stringValue(raw)
		if err != nil || !bytes.Equal(v, version) {
			return nil, nil, detail(ErrBadBody, `jsonrpc is not "2.0"`)
		}
	}
	isResponse := top[topResult] != nil || top[topError] != nil
	if top[topMethod] == nil {
		if !isResponse {
			return nil, nil, detail(ErrBadBody, "neither a request nor a response")
		}
		return nil, nil, nil
	}
	if isResponse {
		return nil, nil, detail(ErrBadBody, "both a request and a response")
	}
	method, err = stringValue(top[topMethod])
	if err != nil {
		return nil, nil, detail(ErrBadBody, "method is not a string")
	}
	if !validMethod(method) {
		return nil, nil, detail(ErrBadBody, "method is not a method token")
	}

	var want []byte
	switch nameMember(string(method)) {
	case "":
		return method, nil, nil
	case "name":
		want = keyName
	default:
		want = keyURI
	}
	params := top[topParams]
	if params == nil || params[0] != '{' {
		return nil, nil, detail(ErrBadBody, "params is not an object")
	}
	var raw [1][]byte
	if err := walkObject(params, 0, func(key, val []byte) error {
		return pick(key, val, [][]byte{want}, raw[:])
	}); err != nil {
		return nil, nil, err
	}
	if raw[0] == nil {
		return nil, nil, detail(ErrBadBody, "params has no "+string(want))
	}
	name, err = stringValue(raw[0])
	if err != nil {
		return nil, nil, detail(ErrBadBody, "params."+string(want)+" is not a string")
	}
	if len(name) == 0 {
		return nil, nil, detail(ErrBadBody, "params."+string(want)+" is empty")
	}
	if bytes.Contains(name, fffd) {
		return nil, nil, detail(ErrBadBody, "params."+string(want)+" holds U+FFFD or an unpaired surrogate")
	}
	if !validName(name) {
		return nil, nil, detail(ErrBadBody, "params."+string(want)+" holds a control character")
	}
	return method, name, nil
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
