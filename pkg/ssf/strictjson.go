package ssf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// A SET's header and claims are checked strictly before anything is read
// from them, as pkg/token checks access tokens: JSON readers disagree on
// an object that repeats a member (first, last, or refused) and on invalid
// UTF-8, so such a SET is refused rather than read one way here and
// another way by its transmitter's audit trail. This is a small reader of
// this package's own, on encoding/json's tokenizer; it is meant to be
// replaced by the shared strict reader (internal/strictjson) once that
// exists.

// maxJSONDepth bounds nesting (objects and arrays). A SET nests three or
// four levels (events → event → subject → member).
const maxJSONDepth = 32

var (
	errNotObject = errors.New("not a JSON object")
	errJSON      = errors.New("invalid JSON")
	errUTF8      = errors.New("invalid UTF-8")
	errDuplicate = errors.New("duplicate member name")
	errDepth     = errors.New("JSON nested too deeply")
	errTrailing  = errors.New("trailing data after the JSON object")
)

// strictObject checks that data is exactly one JSON object, valid UTF-8,
// with no object at any depth repeating a member name (compared after
// unescaping, so "jti" and "\u006ati" are the same name) and at most
// maxJSONDepth levels, and returns its top-level members by name.
//
// An unpaired surrogate escape is not refused: encoding/json reads it as
// U+FFFD, and two such names collide and are refused as duplicates.
func strictObject(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, errUTF8
	}
	if b := bytes.TrimLeft(data, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return nil, errNotObject
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := walk(d, 0); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errTrailing
	}
	// No member repeats: decoding into a map loses nothing, and matches
	// names exactly (a struct would match them without regard to case).
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errJSON
	}
	return m, nil
}

// walk reads one JSON value from d, checking every object in it.
func walk(d *json.Decoder, depth int) error {
	t, err := d.Token()
	if err != nil {
		return errJSON
	}
	delim, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return errDepth
	}
	switch delim {
	case '{':
		seen := map[string]struct{}{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return errJSON
			}
			name, ok := k.(string)
			if !ok {
				return errJSON
			}
			if _, dup := seen[name]; dup {
				return errDuplicate
			}
			seen[name] = struct{}{}
			if err := walk(d, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for d.More() {
			if err := walk(d, depth+1); err != nil {
				return err
			}
		}
	default:
		return errJSON
	}
	if _, err := d.Token(); err != nil { // the closing delimiter
		return errJSON
	}
	return nil
}

// caseVariant reports whether name differs from one of names only in
// case: a member such as "ISS" beside the "iss" a reader expects is
// refused rather than ignored, since some readers match names without
// regard to case.
func caseVariant(name string, names ...string) bool {
	for _, n := range names {
		if name != n && strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}
