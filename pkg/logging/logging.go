// Package logging builds the process logger (log/slog) and makes sure no
// credential ever reaches a log line.
//
// Every handler it returns is wrapped by Redact: attributes under
// credential-bearing keys (authorization, cookie, *_token, *_secret,
// *password…) are replaced by Redacted, and every message and string value
// is passed through scrub, which removes JWTs, HTTP credentials ("Bearer
// …", "Basic …", "DPoP …") and secret query, form or JSON parameters. The
// gateway handles bearer tokens on every request, and a single debug line
// with a token in it turns the log store into a credential store.
//
// It is not an audit trail and it decides nothing about what to log, and it
// is not a general data-loss filter: arbitrary "name=value" text, cookie
// values outside a sensitive key, and secrets in unusual encodings (hex,
// percent-encoded headers) are left alone. Callers still must not log
// request bodies or headers wholesale.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// New builds the process logger writing to w: JSON lines by default,
// slog's text format when format == "text" (case-insensitive). level is
// "debug", "info", "warn" or "error" (case-insensitive; anything else means
// info). The returned *slog.LevelVar lets the caller change the level later
// (config reload). The handler is wrapped by Redact.
func New(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	l, _ := ParseLevel(level) // an unknown level is info: logging must start even if the flag is wrong
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if strings.EqualFold(strings.TrimSpace(format), "text") {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(Redact(h)), lv
}

// ParseLevel maps "debug"/"info"/"warn"/"error" (case-insensitive,
// surrounding spaces ignored) to the slog level, with ok=false for anything
// else. On failure the level returned is slog.LevelInfo, the default.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}
