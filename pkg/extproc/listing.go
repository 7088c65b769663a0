package extproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a listing, the metric label of its removed entries.
type Kind int

// The listings, in the order of their result members.
const (
	Tools Kind = iota
	Prompts
	Resources
	ResourceTemplates
	numKinds
)

// listing describes one kind: the result member holding the entries, the
// entry member naming each, the operation that uses an entry.
var listings = [numKinds]struct {
	member, key, method, label string
}{
	Tools:             {"tools", "name", "tools/call", "tools"},
	Prompts:           {"prompts", "name", "prompts/get", "prompts"},
	Resources:         {"resources", "uri", "resources/read", "resources"},
	ResourceTemplates: {"resourceTemplates", "uriTemplate", "resources/read", "resource_templates"},
}

// String is the metric label of the kind.
func (k Kind) String() string { return listings[k].label }

// keepFunc decides whether the entry named name, of kind k, stays.
type keepFunc func(k Kind, name string) bool

// Removed counts the entries removed from one message, by kind.
type Removed [numKinds]int

// Errors of reading a response. Each is answered by a JSON-RPC error in
// place of the response, never by the response unfiltered.
var (
	// ErrNotJSON: the body is not JSON at all.
	ErrNotJSON = errors.New("extproc: response is not JSON")
	// ErrNoCaller: a listing with no usable caller (no or bad dynamic metadata).
	ErrNoCaller = errors.New("extproc: listing without the Check's dynamic metadata")
	// ErrTooLarge: the body or event is over ext_proc.max_body_bytes.
	ErrTooLarge = errors.New("extproc: response over ext_proc.max_body_bytes")
	// ErrEncoded: a content encoding the processor cannot read.
	ErrEncoded = errors.New("extproc: compressed response")
	// ErrAmbiguous: a member that decides what is listed appears twice, or
	// in two letter cases, which clients' parsers read differently.
	ErrAmbiguous = errors.New("extproc: response names a member twice")
	// ErrUnknownResource: the Check's resource is not in the current policy.
	ErrUnknownResource = errors.New("extproc: the Check's resource is not configured")
)

// filterMessage filters one JSON-RPC message, or a batch of them (a JSON
// array, MCP 2025-03-26), with keep. A message that holds no listing comes
// back as it is (same slice, changed false). One that does is re-encoded
// from what was read, so that a client sees exactly the members this
// function saw (duplicate members collapse to the last, as JSON.parse
// reads them). keep == nil means no caller: a listing is then ErrNoCaller.
// Entries that are not objects, or lack their name member as a string,
// are removed: they cannot be decided.
func filterMessage(data []byte, keep keepFunc) (out []byte, changed bool, removed Removed, err error) {
	d := bytes.TrimLeft(data, " \t\r\n")
	if len(d) > 0 && d[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(d, &batch) != nil {
			return nil, false, removed, ErrNotJSON
		}
		for i, m := range batch {
			o, ch, r, err := filterOne(m, keep)
			if err != nil {
				return nil, false, removed, err
			}
			if ch {
				batch[i], changed = o, true
				for k := range r {
					removed[k] += r[k]
				}
			}
		}
		if !changed {
			return data, false, removed, nil
		}
		out, err = json.Marshal(batch)
		return out, err == nil, removed, err
	}
	return filterOne(data, keep)
}

func filterOne(data []byte, keep keepFunc) ([]byte, bool, Removed, error) {
	var removed Removed
	var msg map[string]json.RawMessage
	if !json.Valid(data) {
		return nil, false, removed, ErrNotJSON
	}
	if !isObject(data) {
		// Valid JSON but not an object (a bare string, a number): not a
		// JSON-RPC message, and no listing.
		return data, false, removed, nil
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return nil, false, removed, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if ambiguous(data, "result") {
		return nil, false, removed, ErrAmbiguous
	}
	raw, ok := msg["result"]
	if !ok {
		return data, false, removed, nil
	}
	if !isObject(raw) {
		return data, false, removed, nil // a result that is not an object lists nothing
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(raw, &result); err != nil {
		return nil, false, removed, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if ambiguous(raw, memberNames[:]...) {
		return nil, false, removed, ErrAmbiguous
	}
	listing := false
	var lists [numKinds][]json.RawMessage
	for k := range Kind(numKinds) {
		v, ok := result[listings[k].member]
		if !ok {
			continue
		}
		if json.Unmarshal(v, &lists[k]) != nil {
			// Present but not an array: not a listing of this kind. A
			// client reading it as one would fail too.
			continue
		}
		listing = true
	}
	if !listing {
		return data, false, removed, nil
	}
	if keep == nil {
		return nil, false, removed, ErrNoCaller
	}
	for k := range Kind(numKinds) {
		if lists[k] == nil {
			continue
		}
		kept := lists[k][:0]
		for _, e := range lists[k] {
			if name, ok := entryName(e, listings[k].key); ok && keep(k, name) {
				kept = append(kept, e)
			} else {
				removed[k]++
			}
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, false, removed, err
		}
		result[listings[k].member] = b
	}
	rb, err := json.Marshal(result)
	if err != nil {
		return nil, false, removed, err
	}
	msg["result"] = rb
	out, err := json.Marshal(msg)
	if err != nil {
		return nil, false, removed, err
	}
	return out, true, removed, nil
}

// isObject reports whether the valid JSON text b is an object.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

var memberNames = [numKinds]string{listings[0].member, listings[1].member, listings[2].member, listings[3].member}

// ambiguous reports whether the JSON object obj names one of the members
// watch twice, or in another letter case. Parsers disagree on such
// objects: JSON.parse keeps the last duplicate, Go's encoding/json merges
// duplicates into one struct and matches field names in any case. What
// this package reads must be what every client reads.
func ambiguous(obj []byte, watch ...string) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := make([]bool, len(watch))
	var skip json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return true
		}
		k, _ := t.(string)
		for i, w := range watch {
			if strings.EqualFold(k, w) {
				if seen[i] || k != w {
					return true
				}
				seen[i] = true
			}
		}
		if dec.Decode(&skip) != nil {
			return true
		}
	}
	return false
}

// entryName reads the member key of an entry as a string. An entry that
// spells key in another letter case too cannot be decided (see ambiguous).
func entryName(e json.RawMessage, key string) (string, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(e, &obj) != nil {
		return "", false
	}
	for k := range obj {
		if k != key && strings.EqualFold(k, key) {
			return "", false
		}
	}
	v, ok := obj[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// messageID returns the id of a JSON-RPC message as JSON text, or "null".
func messageID(data []byte) string {
	var msg struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &msg) != nil || len(msg.ID) == 0 || len(msg.ID) > 256 {
		return "null"
	}
	switch msg.ID[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(msg.ID)
	}
	return "null"
}

// errorMessage is the JSON-RPC error that stands for a response the
// processor would not pass: -32603 (internal error, JSON-RPC 2.0 §5.1),
// with the original id when it could be read.
func errorMessage(id string, err error) []byte {
	msg := "the gateway could not filter this response"
	switch {
	case errors.Is(err, ErrNoCaller), errors.Is(err, ErrUnknownResource):
		msg = "the gateway cannot tell who is asking for this listing"
	case errors.Is(err, ErrTooLarge):
		msg = "the response is too large for the gateway to filter"
	case errors.Is(err, ErrEncoded):
		msg = "the gateway cannot filter a compressed response"
	}
	b := make([]byte, 0, 96+len(id)+len(msg))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":-32603,"message":`...)
	b = strconv.AppendQuote(b, msg)
	return append(b, "}}"...)
}
