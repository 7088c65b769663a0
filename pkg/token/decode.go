package token

import (
	"encoding/json"
	"errors"
	"strconv"
)

// The members a verification reads are decoded here, from the raw values
// members hands over (and so has checked: valid JSON, UTF-8, paired
// surrogates), as encoding/json would decode them into the same Go types,
// without its reflection and allocations: a string or null into a string,
// a number or null into a date. Arrays, rarer (aud and scp as arrays), go
// to encoding/json still.

var errNotString = errors.New("not a string")

// isNull reports whether the raw value v is JSON null.
func isNull(v []byte) bool { return len(v) == 4 && v[0] == 'n' }

// readString decodes a string value into dst; null leaves dst as it is,
// as encoding/json does; any other value is an error.
func readString(v []byte, dst *string) error {
	if isNull(v) {
		return nil
	}
	s, ok := jsonReader.String(v)
	if !ok {
		return errNotString
	}
	*dst = s
	return nil
}

// readDate decodes a NumericDate (RFC 7519 §2) into *store and points dst
// at it: null is absent (nil), as encoding/json sets a pointer. store is
// the caller's, so that a date costs no allocation.
func readDate(v []byte, dst **numericDate, store *numericDate) error {
	if isNull(v) {
		*dst = nil
		return nil
	}
	if err := store.read(v); err != nil {
		return err
	}
	*dst = store
	return nil
}

// readStrings decodes a string, turned into a list by fromString, or an
// array of strings; null is nil.
func readStrings(v []byte, into *[]string, fromString func(string) []string) error {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := readString(v, &s); err != nil {
			return err
		}
		*into = fromString(s)
		return nil
	}
	if isNull(v) {
		*into = nil
		return nil
	}
	return json.Unmarshal(v, into)
}

// read parses a JSON number (checked by members) as encoding/json reads a
// float64.
func (d *numericDate) read(v []byte) error {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return errors.New("numeric date must be a number")
	}
	if n, ok := smallInteger(v); ok {
		// What ParseFloat makes of it, exactly (below 2^53), without
		// its string: the usual spelling of a date, whole seconds.
		return d.set(float64(n))
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return errors.New("numeric date must be a number")
	}
	return d.set(f)
}

// smallInteger reads v when it is nothing but up to 15 decimal digits: a
// whole number below 10^15, which a float64 holds exactly.
func smallInteger(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
