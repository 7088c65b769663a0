package logging

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
)

// Redact wraps h so that credentials never reach it.
//
// An attribute whose key is sensitive (see sensitiveKey) gets the value
// Redacted whatever its kind, empty strings and groups included, and so
// does everything logged below a WithGroup whose name is sensitive. Every
// other value is scrubbed: strings and the message with scrub; errors,
// fmt.Stringers and []string element by element; any other value through
// each text a handler could print for it (%+v, MarshalText, MarshalJSON),
// replacing it by the scrubbed text only when that text held a credential.
// LogValuers are resolved first, once, so h prints exactly what was
// checked.
func Redact(h slog.Handler) slog.Handler {
	if r, ok := h.(*redactor); ok {
		return r
	}
	return &redactor{next: h}
}

type redactor struct {
	next slog.Handler
	// secret is set below a WithGroup whose name is sensitive: every value
	// in it is a credential, whatever its own key.
	secret bool
	// lines is the direct path of the root logger New built over an
	// AsyncWriter in JSON (LinesOf); nil below With and WithGroup, whose
	// attributes and groups it would not write.
	lines *Lines
}

func (r *redactor) Enabled(ctx context.Context, l slog.Level) bool {
	return r.next.Enabled(ctx, l)
}

// Handle passes a clean record on as it is, without copying it: every
// request's audit line comes through here. Only a record with something
// to remove is rebuilt.
func (r *redactor) Handle(ctx context.Context, rec slog.Record) error {
	msg, changed := scrub(rec.Message)
	// The first attribute that changes, kept so that a LogValuer's
	// LogValue runs once and the handler prints the value checked.
	first, k, i := slog.Attr{}, -1, 0
	rec.Attrs(func(a slog.Attr) bool {
		if ra, c := redactAttr(a, r.secret); c {
			first, k = ra, i
			return false
		}
		i++
		return true
	})
	if !changed && k < 0 {
		return r.next.Handle(ctx, rec)
	}
	var buf [16]slog.Attr // typical records fit: no allocation but the record's
	attrs := buf[:0]
	i = 0
	rec.Attrs(func(a slog.Attr) bool {
		switch {
		case k < 0 || i < k:
		case i == k:
			a = first
		default:
			a, _ = redactAttr(a, r.secret)
		}
		attrs = append(attrs, a)
		i++
		return true
	})
	out := slog.NewRecord(rec.Time, rec.Level, msg, rec.PC)
	out.AddAttrs(attrs...)
	return r.next.Handle(ctx, out)
}

// WithAttrs redacts the attributes once, here, rather than on every record.
func (r *redactor) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i], _ = redactAttr(a, r.secret)
	}
	return &redactor{next: r.next.WithAttrs(out), secret: r.secret}
}

func (r *redactor) WithGroup(name string) slog.Handler {
	if name == "" {
		return r
	}
	return &redactor{next: r.next.WithGroup(name), secret: r.secret || sensitiveKey(name)}
}

// redactAttr returns a with credentials removed, and whether it differs.
// secret means a sits under a sensitive name and must be hidden entirely.
func redactAttr(a slog.Attr, secret bool) (slog.Attr, bool) {
	changed := false
	if a.Value.Kind() == slog.KindLogValuer {
		// Resolve here and hand the result on, so LogValue runs once and
		// the handler cannot print a different value than the one checked.
		a.Value = a.Value.Resolve()
		changed = true
	}
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return a, changed // the empty Attr, which handlers drop
	}
	secret = secret || sensitiveKey(a.Key)
	if a.Value.Kind() == slog.KindGroup {
		if secret && a.Key != "" {
			return slog.String(a.Key, Redacted), true
		}
		// An inline group (empty key) inherits secret from its parent.
		g, c := redactGroup(a.Value.Group(), secret)
		if c {
			a.Value = slog.GroupValue(g...)
		}
		return a, changed || c
	}
	if secret {
		if a.Value.Kind() == slog.KindString && a.Value.String() == Redacted {
			return a, changed
		}
		return slog.String(a.Key, Redacted), true
	}
	v, c := redactValue(a.Value)
	if c {
		a.Value = v
	}
	return a, changed || c
}

// redactGroup copies as only if one of its attributes changes.
func redactGroup(as []slog.Attr, secret bool) ([]slog.Attr, bool) {
	var out []slog.Attr
	for i, a := range as {
		ra, c := redactAttr(a, secret)
		if c && out == nil {
			out = make([]slog.Attr, len(as))
			copy(out, as)
		}
		if out != nil {
			out[i] = ra
		}
	}
	if out == nil {
		return as, false
	}
	return out, true
}

func redactValue(v slog.Value) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		if s, c := scrub(v.String()); c {
			return slog.StringValue(s), true
		}
	case slog.KindAny:
		return redactAny(v)
	}
	// Numbers, bools, times and durations cannot hold a token.
	return v, false
}

// redactAny checks every text a handler could print for an arbitrary
// value, and replaces the value by the first of those texts that held a
// credential, scrubbed. The text handler prints MarshalText, or else %+v
// (which prefers Error() and String()); the JSON handler prints Error()
// for an error, or else json.Marshal, which prefers MarshalJSON and
// ignores String(): a Stringer that hides its fields still shows them as
// JSON. A value with no credential in any rendering is kept as it is.
func redactAny(v slog.Value) (slog.Value, bool) {
	x := v.Any()
	switch t := x.(type) {
	case nil:
		return v, false
	case []string:
		return redactStrings(v, t)
	}
	if bs, ok := byteSlice(x); ok {
		// The text handler prints byte slices as text, the JSON handler as
		// base64 (or raw, for json.RawMessage): check the bytes themselves.
		if s, c := scrub(string(bs)); c {
			return slog.StringValue(s), true
		}
		return v, false
	}
	err, isErr := x.(error)
	_, isFormatter := x.(fmt.Formatter)
	_, isJSONMarshaler := x.(json.Marshaler)
	if isErr {
		if s, c := scrub(errorText(err)); c {
			return slog.StringValue(s), true
		}
	}
	if !isErr || isFormatter { // for other errors %+v is Error()
		if s, c := scrub(fmt.Sprintf("%+v", x)); c {
			return slog.StringValue(s), true
		}
	}
	if tm, ok := x.(encoding.TextMarshaler); ok {
		if s, c := scrub(marshalText(tm)); c {
			return slog.StringValue(s), true
		}
	}
	if !isErr || isJSONMarshaler {
		if s, c := scrub(marshalJSON(x)); c {
			return slog.StringValue(s), true
		}
	}
	return v, false
}

// redactStrings keeps the slice type, copying it only if an element changes.
func redactStrings(v slog.Value, ss []string) (slog.Value, bool) {
	var out []string
	for i, s := range ss {
		rs, c := scrub(s)
		if c && out == nil {
			out = make([]string, len(ss))
			copy(out, ss)
		}
		if out != nil {
			out[i] = rs
		}
	}
	if out == nil {
		return v, false
	}
	return slog.AnyValue(out), true
}

// byteSlice returns the bytes of any slice whose elements are bytes,
// named types such as json.RawMessage included.
func byteSlice(x any) ([]byte, bool) {
	if bs, ok := x.([]byte); ok {
		return bs, true
	}
	rv := reflect.ValueOf(x)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
		return rv.Bytes(), true
	}
	return nil, false
}

// The renderers below treat a panic (a nil receiver, typically) or an
// error as no text: the handler recovers from the same panic and prints a
// placeholder, or prints the error instead of the value.

func errorText(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return err.Error()
}

func marshalText(tm encoding.TextMarshaler) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	b, err := tm.MarshalText()
	if err != nil {
		return ""
	}
	return string(b)
}

func marshalJSON(x any) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	b, err := json.Marshal(x)
	if err != nil {
		return ""
	}
	return string(b)
}

// sensitiveKey reports whether an attribute key, JSON member name or form
// field name k names a credential. Case is ignored and '-' and '_' are
// dropped, so access_token, Access-Token and accessToken are one name.
// Only the last word counts, words being separated by anything but letters,
// digits, '-' and '_': http.request.header.authorization is sensitive, and
// so is "GET /cb?code" (scrub passes everything before an '=').
//
// Names ending in token, secret, password, passwd, cookie, authorization,
// assertion, apikey or privatekey are sensitive; so are exactly bearer,
// code, code_verifier, device_code, auth_code, authorization_code, session
// and session_id (exact, so that status_code stays readable).
//
// scrub calls this for every "name=" it sees, so it works in place: no
// buffer, no allocation, and most names are rejected on their last letters.
func sensitiveKey(k string) bool {
	j := lastSignificant(k, len(k)-1)
	if j < 0 || !isAlnum(k[j]) {
		return false
	}
	switch lower(k[j]) { // the last letter picks the few names worth comparing
	case 'n':
		return keyEnds(k, "token") || keyEnds(k, "authorization") || keyEnds(k, "assertion") || keyIs(k, "session")
	case 't':
		return keyEnds(k, "secret")
	case 'd':
		return keyEnds(k, "password") || keyEnds(k, "passwd") || keyIs(k, "sessionid")
	case 'e':
		return keyEnds(k, "cookie") || keyIs(k, "code") || keyIs(k, "devicecode") || keyIs(k, "authcode") || keyIs(k, "authorizationcode")
	case 'y':
		return keyEnds(k, "apikey") || keyEnds(k, "privatekey")
	case 'r':
		return keyIs(k, "bearer") || keyIs(k, "codeverifier")
	}
	return false
}

// keyEnds reports whether the last word of k, lower-cased and without '-'
// and '_', ends with suffix.
func keyEnds(k, suffix string) bool {
	_, ok := keyTail(k, suffix)
	return ok
}

// keyIs reports whether the last word of k, lower-cased and without '-'
// and '_', is name.
func keyIs(k, name string) bool {
	j, ok := keyTail(k, name)
	if !ok {
		return false
	}
	j = lastSignificant(k, j)
	return j < 0 || !isAlnum(k[j])
}

// keyTail matches suffix against the end of k from right to left, and
// returns the index in k just before the match.
func keyTail(k, suffix string) (int, bool) {
	j := len(k) - 1
	for x := len(suffix) - 1; x >= 0; x-- {
		j = lastSignificant(k, j)
		if j < 0 || lower(k[j]) != suffix[x] {
			return j, false
		}
		j--
	}
	return j, true
}

// lastSignificant returns the index of the last byte of k[:j+1] that is
// not '-' or '_', or -1.
func lastSignificant(k string, j int) int {
	for j >= 0 && (k[j] == '-' || k[j] == '_') {
		j--
	}
	return j
}

// mayEndSensitiveKey is the cheap first test scrub applies to the byte in
// front of an '=': the last letter of every name sensitiveKey accepts.
func mayEndSensitiveKey(c byte) bool {
	switch lower(c) {
	case 'n', 't', 'd', 'e', 'y', 'r':
		return true
	}
	return false
}
