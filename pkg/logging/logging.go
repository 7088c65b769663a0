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
	"context"
	"io"
	"log/slog"
	"strings"
)

// New builds the process logger writing to w: JSON lines by default,
// slog's text format when format == "text" (case-insensitive). level is
// "debug", "info", "warn" or "error" (case-insensitive; anything else means
// info). The returned *slog.LevelVar lets the caller change the level later
// (config reload). The handler is wrapped by Redact.
//
// When w is an *AsyncWriter, warn and error lines are written with its
// reserve (UrgentReserveBytes): a flood of info lines that fills the
// buffer is dropped before them. The JSON logger then also has a direct
// path for lines of a fixed shape written on every request (LinesOf).
func New(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	l, _ := ParseLevel(level) // an unknown level is info: logging must start even if the flag is wrong
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	text := strings.EqualFold(strings.TrimSpace(format), "text")
	handler := func(w io.Writer) slog.Handler {
		if text {
			return slog.NewTextHandler(w, opts)
		}
		return slog.NewJSONHandler(w, opts)
	}
	aw, async := w.(*AsyncWriter)
	if !async {
		return slog.New(Redact(handler(w))), lv
	}
	r := &redactor{next: bySeverity{low: handler(aw), high: handler(urgent{aw})}}
	if !text {
		r.lines = &Lines{w: aw, level: lv}
	}
	return slog.New(r), lv
}

// bySeverity sends warn and error records to high, the others to low.
type bySeverity struct{ low, high slog.Handler }

func (h bySeverity) Enabled(ctx context.Context, l slog.Level) bool { return h.low.Enabled(ctx, l) }

func (h bySeverity) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.high.Handle(ctx, r)
	}
	return h.low.Handle(ctx, r)
}

func (h bySeverity) WithAttrs(as []slog.Attr) slog.Handler {
	return bySeverity{low: h.low.WithAttrs(as), high: h.high.WithAttrs(as)}
}

func (h bySeverity) WithGroup(name string) slog.Handler {
	return bySeverity{low: h.low.WithGroup(name), high: h.high.WithGroup(name)}
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
