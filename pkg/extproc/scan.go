package extproc

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A small reader of JSON text already known to be valid (json.Valid): it
// finds members and elements by position without decoding them, so that a
// listing is filtered by splicing its arrays, every other byte of the
// response passed as the server wrote it.

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(b[j])) {
		j++
	}
	return j
}

// key decodes a member name as JSON.parse does (escapes resolved).
func jsonString(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // valid JSON: cannot fail
	return s
}

// eachMember calls fn with each member of the object at b[i] ('{'): its
// decoded name and where its value starts and ends.
func eachMember(b []byte, i int, fn func(name string, vs, ve int)) {
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != '}' {
		ke := skipString(b, i)
		name := jsonString(b[i:ke])
		vs := skipWS(b, skipWS(b, ke)+1) // past the colon
		ve := skipValue(b, vs)
		fn(name, vs, ve)
		i = skipWS(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
}

// eachElement calls fn with where each element of the array at b[i] ('[')
// starts and ends.
func eachElement(b []byte, i int, fn func(vs, ve int)) {
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != ']' {
		ve := skipValue(b, i)
		fn(i, ve)
		i = skipWS(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
}
