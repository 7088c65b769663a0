package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// attr is one attribute of a direct line: a string, or an int when s is
// not set.
type attr struct {
	key string
	s   *string
	n   int64
}

func str(k, v string) attr           { return attr{key: k, s: &v} }
func integer(k string, n int64) attr { return attr{key: k, n: n} }

// viaLogger is the line New's logger writes for the record.
func viaLogger(t testing.TB, at time.Time, level slog.Level, msg string, attrs []attr) string {
	t.Helper()
	var buf bytes.Buffer
	lg, _ := New(&buf, "debug", "json")
	rec := slog.NewRecord(at, level, msg, 0)
	for _, a := range attrs {
		if a.s != nil {
			rec.AddAttrs(slog.String(a.key, *a.s))
		} else {
			rec.AddAttrs(slog.Int64(a.key, a.n))
		}
	}
	if err := lg.Handler().Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// viaLines is the line the direct path writes for the same record.
func viaLines(t testing.TB, at time.Time, level slog.Level, msg string, attrs []attr) string {
	t.Helper()
	var out lockedBuffer
	w := NewAsyncWriter(&out)
	lg, _ := New(w, "debug", "json")
	ls := LinesOf(lg)
	if ls == nil {
		t.Fatal("no direct path on the JSON logger over an AsyncWriter")
	}
	l := ls.Start(at, level, msg)
	for _, a := range attrs {
		if a.s != nil {
			l.String(NewKey(a.key), *a.s)
		} else {
			l.Int(NewKey(a.key), a.n)
		}
	}
	l.End()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// The direct path writes the very bytes the logger writes: the same
// quoting, the same redaction.
func TestLinesWriteWhatTheLoggerWrites(t *testing.T) {
	at := time.Date(2026, 12, 6, 13, 45, 7, 123456789, time.UTC)
	for _, tc := range []struct {
		name  string
		level slog.Level
		msg   string
		attrs []attr
	}{
		{"an audit line", slog.LevelInfo, "decision", []attr{
			str("log", "audit"), str("decision", "allow"), integer("status", 200), str("reason", "allowed"),
			str("resource", "mcp"), str("transport", "grpc"), str("tier", "local"), integer("latency_us", 42),
			str("subject", "alice"), str("client_id", "cli"), str("issuer", "https://as.example.com"),
			str("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")}},
		{"credentials", slog.LevelWarn, "got Bearer " + testJWT, []attr{
			str("detail", "introspection said: access_token="+testJWT+"&x=1"), str("authorization", "Basic dXNlcjpwYXNz"),
			integer("code", 1234), str("cookie", ""), str("session_id", "abc")}},
		{"quoting", slog.LevelError, "line\nbreak \"quoted\" \\ <html> & \u2028\u2029 \x00\x1f\x7f", []attr{
			str("bad utf-8", "a\xffb\xc3"), str("emoji", "🔑 ключ"), str("tab\tkey", "\r\t"), integer("", -7)}},
		{"no attributes", slog.LevelDebug, "", nil},
		{"a level between", slog.LevelInfo + 2, "m", nil},
		{"a time far out", slog.LevelInfo, "m", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := at
			if tc.name == "a time far out" {
				at = time.Date(10001, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
			}
			want := viaLogger(t, at, tc.level, tc.msg, tc.attrs)
			got := viaLines(t, at, tc.level, tc.msg, tc.attrs)
			if got != want {
				t.Errorf("direct path:\n%s\nlogger:\n%s", got, want)
			}
		})
	}
}

func FuzzLinesWriteWhatTheLoggerWrites(f *testing.F) {
	f.Add("decision", "subject", "alice", "n", int64(3))
	f.Add("Bearer abc.def", "access_token", "x", "code", int64(-1))
	f.Add("a\xff\u2028\"\\", "k\x01", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "", int64(0))
	at := time.Date(2026, 12, 6, 13, 45, 7, 1000, time.UTC)
	f.Fuzz(func(t *testing.T, msg, k1, v1, k2 string, n int64) {
		attrs := []attr{str(k1, v1), integer(k2, n)}
		if got, want := viaLines(t, at, slog.LevelInfo, msg, attrs), viaLogger(t, at, slog.LevelInfo, msg, attrs); got != want {
			t.Errorf("direct path:\n%s\nlogger:\n%s", got, want)
		}
	})
}

// Only the root JSON logger over an AsyncWriter has a direct path: the
// others would write a different line, or write concurrently to an output
// that is not safe for it.
func TestLinesOf(t *testing.T) {
	w := NewAsyncWriter(io.Discard)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	root, lv := New(w, "info", "json")
	text, _ := New(w, "info", "text")
	sync, _ := New(io.Discard, "info", "json")
	for name, lg := range map[string]*slog.Logger{
		"text": text, "synchronous": sync, "With": root.With("a", "b"), "WithGroup": root.WithGroup("g"),
		"another handler": slog.New(slog.NewJSONHandler(w, nil)),
	} {
		if LinesOf(lg) != nil {
			t.Errorf("%s: a direct path", name)
		}
	}
	ls := LinesOf(root)
	if ls == nil {
		t.Fatal("the root JSON logger over an AsyncWriter has no direct path")
	}
	if ls.Enabled(slog.LevelDebug) || !ls.Enabled(slog.LevelInfo) {
		t.Error("Enabled does not follow the level")
	}
	lv.Set(slog.LevelWarn)
	if ls.Enabled(slog.LevelInfo) {
		t.Error("Enabled does not follow a level changed later")
	}
}

// Over an AsyncWriter, the logger redacts as it does elsewhere, warn and
// error lines (which take the reserve) included.
func TestAsyncLoggerNeverWritesCredentials(t *testing.T) {
	ctx := context.Background()
	for _, lvl := range []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		for _, tc := range logCases() {
			var out lockedBuffer
			w := NewAsyncWriter(&out)
			lg, _ := New(w, "info", "json")
			tc.log(ctx, lg, lvl)
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			line := out.String()
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil || strings.Count(line, "\n") != 1 {
				t.Fatalf("%s/%s: not one JSON line: %q", lvl, tc.name, line)
			}
			for _, s := range secrets {
				if strings.Contains(line, s) {
					t.Errorf("%s/%s: credential %.20q… leaked:\n%s", lvl, tc.name, s, line)
				}
			}
			if m["resource"] != resource || m["level"] != lvl.String() {
				t.Errorf("%s/%s: resource or level not readable: %v", lvl, tc.name, m)
			}
		}
	}
}

// A LogValuer in a record is resolved once: the line shows the value that
// was checked.
func TestHandleResolvesOnce(t *testing.T) {
	n := 0
	lg, _ := New(io.Discard, "info", "json")
	lg.Info("m", "a", "b", "v", countingValuer{&n}, "c", "d")
	if n != 1 {
		t.Errorf("LogValue called %d times, want 1", n)
	}
}

// A line's time is what time.RFC3339Nano makes of it, whether its second
// was formatted for an earlier line or not: every fraction (trailing
// zeros dropped, none when whole), zones east and west and UTC, a second
// seen again after another, the same instant in another location, and
// the years slog cannot write.
func TestLinesTime(t *testing.T) {
	ls := &Lines{}
	east, west := time.FixedZone("e", 5*3600+30*60), time.FixedZone("w", -8*3600)
	base := time.Date(2026, 12, 6, 13, 45, 7, 0, time.UTC)
	var times []time.Time
	for _, ns := range []int{0, 1, 10, 100_000, 120_000_000, 123_456_789, 999_999_999, 500_000_000} {
		for _, loc := range []*time.Location{time.UTC, east, west, time.Local} {
			times = append(times, base.Add(time.Duration(ns)).In(loc), base.Add(time.Second+time.Duration(ns)).In(loc))
		}
	}
	times = append(times, base, base.Add(-time.Second), base,
		time.Date(10001, 1, 1, 0, 0, 0, 5, east), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(time.Nanosecond),
		time.Date(0, 6, 1, 12, 0, 0, 5, west), time.Date(1, 1, 1, 0, 0, 0, 999, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 500, east))
	for _, at := range times {
		want := `"` + at.Format(time.RFC3339Nano)
		if y := at.Year(); y < 0 || y >= 10000 {
			want = `"!ERROR:time.Time year outside of range [0,9999]""` + at.Format(time.RFC3339Nano)
		}
		if got := string(ls.appendTime(nil, at)); got != want {
			t.Errorf("%v: %s, want %s", at, got, want)
		}
	}
}

// A Fragment adds the bytes String and Int add, redaction included.
func TestFragment(t *testing.T) {
	add := func(l *Line) {
		l.String(NewKey("subject"), "alice \"x\"")
		l.String(NewKey("detail"), "Bearer "+testJWT)
		l.String(NewKey("access_token"), "abc")
		l.Int(NewKey("n"), -3)
	}
	direct := Line{}
	add(&direct)
	var via Line
	via.Fragment(Encode(add))
	via.Fragment(Fragment{})
	if string(via.b) != string(direct.b) {
		t.Errorf("fragment %s, want %s", via.b, direct.b)
	}
	if strings.Contains(string(via.b), testJWT) || strings.Contains(string(via.b), "abc") {
		t.Errorf("a credential in %s", via.b)
	}
}
