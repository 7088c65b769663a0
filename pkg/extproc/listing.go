package extproc

import (
	"encoding/json"
	"errors"
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
// array, MCP 2025-03-26), with keep. A listing's arrays are spliced: every
// other byte stays as the server wrote it, and a message that holds no
// listing, or loses no entry, comes back as it is (same slice, changed
// false). keep == nil means no caller: a listing is then ErrNoCaller.
// Entries that are not objects, or lack their name member as a string,
// are removed: they cannot be decided. A message, result or entry that
// names a member this function reads twice, or in another letter case, is
// refused (ErrAmbiguous) or its entry removed: parsers disagree on them
// (JSON.parse keeps the last duplicate, Go's encoding/json merges them and
// matches names in any case), and what is read here must be what every
// client reads.
func filterMessage(data []byte, keep keepFunc) (out []byte, changed bool, removed Removed, err error) {
	if !json.Valid(data) {
		return nil, false, removed, ErrNotJSON
	}
	var edits []edit
	i := skipWS(data, 0)
	switch data[i] {
	case '[':
		eachElement(data, i, func(vs, _ int) {
			if err == nil && data[vs] == '{' {
				var e []edit
				e, err = listingEdits(data, vs, keep, &removed)
				edits = append(edits, e...)
			}
		})
	case '{':
		edits, err = listingEdits(data, i, keep, &removed)
	}
	if err != nil {
		return nil, false, Removed{}, err
	}
	if len(edits) == 0 {
		return data, false, removed, nil
	}
	n := len(data)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out = make([]byte, 0, n)
	last := 0
	for _, e := range edits {
		out = append(out, data[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, data[last:]...), true, removed, nil
}

// edit replaces data[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// listingEdits returns the edits that filter the message object at
// data[i], in the order of their positions.
func listingEdits(data []byte, i int, keep keepFunc, removed *Removed) ([]edit, error) {
	rs, results, amb := -1, 0, false
	eachMember(data, i, func(name string, vs, _ int) {
		if strings.EqualFold(name, "result") {
			results++
			amb = amb || name != "result" || results > 1
			rs = vs
		}
	})
	if amb {
		return nil, ErrAmbiguous
	}
	if rs < 0 || data[rs] != '{' {
		return nil, nil // no result, or one that is not an object: no listing
	}
	type array struct {
		k      Kind
		vs, ve int
	}
	var arrays []array
	var seen [numKinds]bool
	eachMember(data, rs, func(name string, vs, ve int) {
		for k := range Kind(numKinds) {
			if !strings.EqualFold(name, listings[k].member) {
				continue
			}
			amb = amb || name != listings[k].member || seen[k]
			seen[k] = true
			if data[vs] == '[' {
				// Anything else (null, an object) is no listing of this
				// kind; a client reading it as one would fail too.
				arrays = append(arrays, array{k, vs, ve})
			}
		}
	})
	switch {
	case amb:
		return nil, ErrAmbiguous
	case len(arrays) == 0:
		return nil, nil
	case keep == nil:
		return nil, ErrNoCaller
	}
	var edits []edit
	for _, a := range arrays {
		var repl []byte
		dropped := 0
		eachElement(data, a.vs, func(vs, ve int) {
			if name, ok := entryName(data, vs, listings[a.k].key); ok && keep(a.k, name) {
				if repl == nil {
					repl = make([]byte, 0, a.ve-a.vs)
					repl = append(repl, '[')
				} else {
					repl = append(repl, ',')
				}
				repl = append(repl, data[vs:ve]...)
				return
			}
			dropped++
		})
		if dropped == 0 {
			continue
		}
		removed[a.k] += dropped
		if repl == nil {
			repl = []byte{'['}
		}
		edits = append(edits, edit{a.vs, a.ve, append(repl, ']')})
	}
	return edits, nil
}

// entryName reads the member key of the entry at data[i] as a string. An
// entry that is not an object, names key twice or in another letter case,
// or whose key is not a string, has no name.
func entryName(data []byte, i int, key string) (string, bool) {
	if data[i] != '{' {
		return "", false
	}
	name, found, bad := "", false, false
	eachMember(data, i, func(n string, vs, ve int) {
		if !strings.EqualFold(n, key) {
			return
		}
		if n != key || found || data[vs] != '"' {
			bad = true
			return
		}
		name, found = jsonString(data[vs:ve]), true
	})
	return name, found && !bad
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
