package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const (
	resource = "https://mcp.example.com/mcp"
	reason   = "token_expired"
)

// jwtValuer resolves to a token, as a lazily-built attribute might.
type jwtValuer struct{}

func (jwtValuer) LogValue() slog.Value { return slog.StringValue("raw " + testJWT) }

// hiddenToken prints nicely but still marshals its field to JSON: the JSON
// handler ignores String().
type hiddenToken struct{ Raw string }

func (hiddenToken) String() string { return "token(…)" }

// proofError only shows its secret through MarshalText, which the text
// handler prefers to Error() (the JSON handler prints Error()).
type proofError struct{ raw string }

func (proofError) Error() string                  { return "proof rejected" }
func (e proofError) MarshalText() ([]byte, error) { return []byte("DPoP " + e.raw), nil }

// boom panics when marshalled; the JSON handler recovers and prints a
// placeholder, and so must the redactor.
type boom struct{}

func (boom) MarshalJSON() ([]byte, error) { panic("boom") }

// nilErr has a pointer receiver that dereferences: logging a nil one must
// not crash the redactor.
type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

// logCase logs one line at level l carrying a credential somewhere, plus the
// resource and reason attributes that must stay readable.
type logCase struct {
	name string
	log  func(ctx context.Context, lg *slog.Logger, l slog.Level)
}

func logCases() []logCase {
	plain := []any{"resource", resource, "reason", reason}
	with := func(args ...any) []any { return append(args, plain...) }
	return []logCase{
		{"authorization key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("authorization", testOpaque)...)
		}},
		{"authorization header with scheme", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("authorization", "Bearer "+testJWT)...)
		}},
		{"Cookie key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("Cookie", "__Host-mcp_session="+testOpaque)...)
		}},
		{"token key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("token", testOpaque)...)
		}},
		{"access-token key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("access-token", testOpaque)...)
		}},
		{"admin_token key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("admin_token", testOpaque)...)
		}},
		{"camelCase key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("refreshToken", testOpaque)...)
		}},
		{"sensitive key with a non-string value", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("client_secret", []byte(testOpaque))...)
		}},
		{"sensitive key holding a group", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with(slog.Group("session", "id", testOpaque, "subject", "alice"))...)
		}},
		{"in a group", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with(slog.Group("request",
				slog.String("method", "POST"),
				slog.Group("headers", slog.String("authorization", testOpaque), slog.String("x-api-key", testOpaque)),
				slog.String("url", "/cb?code="+testOpaque+"&state=s")))...)
		}},
		{"through logger.With", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.With("token", testOpaque, "detail", "verify "+testJWT).Log(ctx, l, "check", plain...)
		}},
		{"through With inside WithGroup", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.With(plain...).WithGroup("http").With("authorization", testOpaque).Log(ctx, l, "check", "header", "Bearer "+testOpaque)
		}},
		{"under a sensitive WithGroup", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.With(plain...).WithGroup("session").Log(ctx, l, "check", "id", testOpaque, "n", 1)
		}},
		{"inside an error", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("err", fmt.Errorf("verify %s: bad", testJWT))...)
		}},
		{"inside a wrapped error", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			err := fmt.Errorf("introspect: %w", errors.New(`upstream said {"active":true,"access_token":"`+testOpaque+`"}`))
			lg.Log(ctx, l, "check", with(slog.Any("error", err))...)
		}},
		{"inside a []string", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("values", []string{"ok", testJWT, "Bearer " + testOpaque})...)
		}},
		{"inside a struct value", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			v := struct {
				Issuer string
				Token  string
			}{"https://as.example.com", testJWT}
			lg.Log(ctx, l, "check", with("claims", v)...)
		}},
		{"inside a map value", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("headers", map[string][]string{"Authorization": {"DPoP " + testOpaque}})...)
		}},
		{"inside a Stringer that hides it from %v only", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("tok", hiddenToken{Raw: testJWT})...)
		}},
		{"inside an error's MarshalText", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("err", proofError{testOpaque})...)
		}},
		{"inside json.RawMessage", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("body", json.RawMessage(`{"id_token":"`+testOpaque+`"}`))...)
		}},
		{"from a LogValuer", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("lazy", jwtValuer{})...)
		}},
		{"in the message", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "rejected "+testJWT+" with Bearer "+testOpaque, plain...)
		}},
		{"JWE under a neutral key", func(ctx context.Context, lg *slog.Logger, l slog.Level) {
			lg.Log(ctx, l, "check", with("detail", "got "+testJWE)...)
		}},
	}
}

// secrets are the strings no log line may contain. The JWT payload is
// listed too: it is the part a partial match would leave behind.
var secrets = []string{
	testOpaque, testJWT, jwtSig, strings.Split(testJWT, ".")[1],
	testJWE, "XFBoMYUZodetZdvTiFvSkQ",
}

func TestLoggerNeverWritesCredentials(t *testing.T) {
	ctx := context.Background()
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	for _, format := range []string{"json", "text"} {
		for _, lvl := range levels {
			for _, tc := range logCases() {
				t.Run(format+"/"+lvl.String()+"/"+tc.name, func(t *testing.T) {
					var buf bytes.Buffer
					lg, _ := New(&buf, lvl.String(), format)
					tc.log(ctx, lg, lvl)
					out := buf.String()
					if strings.Count(out, "\n") != 1 {
						t.Fatalf("want exactly one line, got:\n%s", out)
					}
					for _, s := range secrets {
						if strings.Contains(out, s) {
							t.Errorf("credential %.20q… leaked:\n%s", s, out)
						}
					}
					if !strings.Contains(out, Redacted) {
						t.Errorf("no %s marker, so nothing was redacted:\n%s", Redacted, out)
					}
					if format == "text" {
						for _, kv := range []string{"resource=" + resource, "reason=" + reason, "level=" + lvl.String()} {
							if !strings.Contains(out, kv) {
								t.Errorf("missing %q:\n%s", kv, out)
							}
						}
						return
					}
					var m map[string]any
					if err := json.Unmarshal([]byte(out), &m); err != nil {
						t.Fatalf("line is not valid JSON: %v\n%s", err, out)
					}
					if m["resource"] != resource || m["reason"] != reason || m["level"] != lvl.String() {
						t.Errorf("resource/reason/level not readable: %v", m)
					}
				})
			}
		}
	}
}

// Below the configured level nothing is written, redacted or not.
func TestLoggerLevelFilters(t *testing.T) {
	tests := []struct {
		level string
		drop  []slog.Level
		keep  []slog.Level
	}{
		{"debug", nil, []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}},
		{"INFO", []slog.Level{slog.LevelDebug}, []slog.Level{slog.LevelInfo, slog.LevelError}},
		{"Warn", []slog.Level{slog.LevelDebug, slog.LevelInfo}, []slog.Level{slog.LevelWarn, slog.LevelError}},
		{"error", []slog.Level{slog.LevelInfo, slog.LevelWarn}, []slog.Level{slog.LevelError}},
		{"verbose", []slog.Level{slog.LevelDebug}, []slog.Level{slog.LevelInfo}}, // unknown means info
		{"", []slog.Level{slog.LevelDebug}, []slog.Level{slog.LevelInfo}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			lg, _ := New(&buf, tt.level, "json")
			for _, l := range tt.drop {
				lg.Log(context.Background(), l, "dropped")
			}
			if buf.Len() != 0 {
				t.Fatalf("lines below %q were written:\n%s", tt.level, buf.String())
			}
			for _, l := range tt.keep {
				lg.Log(context.Background(), l, "kept")
			}
			if got := strings.Count(buf.String(), "\n"); got != len(tt.keep) {
				t.Errorf("got %d lines, want %d:\n%s", got, len(tt.keep), buf.String())
			}
		})
	}
}

func TestLevelVarChangesLevelLive(t *testing.T) {
	var buf bytes.Buffer
	lg, lv := New(&buf, "info", "json")
	lg.Debug("before")
	if buf.Len() != 0 {
		t.Fatalf("debug line written at info: %s", buf.String())
	}
	lv.Set(slog.LevelDebug)
	lg.Debug("after", "token", testOpaque)
	if !strings.Contains(buf.String(), `"msg":"after"`) {
		t.Fatalf("debug line missing after Set(LevelDebug): %q", buf.String())
	}
	if strings.Contains(buf.String(), testOpaque) {
		t.Errorf("token leaked: %s", buf.String())
	}
	// A child logger shares the level.
	buf.Reset()
	child := lg.With("component", "jwks")
	lv.Set(slog.LevelError)
	child.Warn("dropped")
	if buf.Len() != 0 {
		t.Errorf("warn written after Set(LevelError): %s", buf.String())
	}
}

func TestNewFormat(t *testing.T) {
	tests := []struct {
		format string
		json   bool
	}{
		{"json", true},
		{"", true},
		{"yaml", true},
		{"text", false},
		{"TEXT", false},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			lg, _ := New(&buf, "info", tt.format)
			lg.Info("hello", "resource", resource)
			gotJSON := json.Valid(buf.Bytes())
			if gotJSON != tt.json {
				t.Errorf("format %q: JSON output = %v, want %v:\n%s", tt.format, gotJSON, tt.json, buf.String())
			}
			if !tt.json && !strings.HasPrefix(buf.String(), "time=") {
				t.Errorf("format %q: not slog text: %s", tt.format, buf.String())
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"debug", slog.LevelDebug, true},
		{"DEBUG", slog.LevelDebug, true},
		{"Info", slog.LevelInfo, true},
		{"warn", slog.LevelWarn, true},
		{" warn ", slog.LevelWarn, true},
		{"ERROR", slog.LevelError, true},
		{"warning", slog.LevelInfo, false},
		{"trace", slog.LevelInfo, false},
		{"", slog.LevelInfo, false},
		{"DEBUG-4", slog.LevelInfo, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseLevel(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// decode logs one record through Redact into a JSON handler and returns it.
func decode(t *testing.T, f func(*slog.Logger)) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	f(slog.New(Redact(slog.NewJSONHandler(&buf, nil))))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", buf.String(), err)
	}
	return m
}

func TestRedactValues(t *testing.T) {
	type point struct{ X, Y int }
	tests := []struct {
		name string
		log  func(*slog.Logger)
		key  string
		want any // after a JSON round trip
	}{
		{"empty string under a sensitive key", func(l *slog.Logger) { l.Info("m", "password", "") }, "password", Redacted},
		{"number under a sensitive key", func(l *slog.Logger) { l.Info("m", "code", 42) }, "code", Redacted},
		{"redis_password", func(l *slog.Logger) { l.Info("m", "redis_password", "hunter2") }, "redis_password", Redacted},
		{"X-Api-Key", func(l *slog.Logger) { l.Info("m", "X-Api-Key", "k") }, "X-Api-Key", Redacted},
		{"Set-Cookie", func(l *slog.Logger) { l.Info("m", "Set-Cookie", "sid=1") }, "Set-Cookie", Redacted},
		{"dotted header key", func(l *slog.Logger) { l.Info("m", "http.request.header.authorization", "x") }, "http.request.header.authorization", Redacted},
		{"status_code is not a credential", func(l *slog.Logger) { l.Info("m", "status_code", 401) }, "status_code", 401.0},
		{"token_type is not a credential", func(l *slog.Logger) { l.Info("m", "token_type", "Bearer") }, "token_type", "Bearer"},
		{"clean struct kept as a value", func(l *slog.Logger) { l.Info("m", "p", point{1, 2}) }, "p", map[string]any{"X": 1.0, "Y": 2.0}},
		{"clean []string kept", func(l *slog.Logger) { l.Info("m", "s", []string{"a", "b"}) }, "s", []any{"a", "b"}},
		{"[]string elements scrubbed", func(l *slog.Logger) { l.Info("m", "s", []string{"a", "Basic eA=="}) }, "s", []any{"a", "Basic " + Redacted}},
		{"clean error kept", func(l *slog.Logger) { l.Info("m", "err", errors.New("boom")) }, "err", "boom"},
		{"error scrubbed", func(l *slog.Logger) { l.Info("m", "err", errors.New("bad code=abc")) }, "err", "bad code=" + Redacted},
		{"nil error pointer", func(l *slog.Logger) { l.Info("m", "err", (*nilErr)(nil)) }, "err", "<nil>"},
		{"duration untouched", func(l *slog.Logger) { l.Info("m", "d", time.Second) }, "d", 1e9},
		{"string scrubbed", func(l *slog.Logger) { l.Info("m", "u", "/cb?code=abc&state=s") }, "u", "/cb?code=" + Redacted + "&state=s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(t, tt.log)
			got, _ := json.Marshal(m[tt.key])
			want, _ := json.Marshal(tt.want)
			if !bytes.Equal(got, want) {
				t.Errorf("%s = %s, want %s", tt.key, got, want)
			}
		})
	}
}

func TestRedactSurvivesPanickingValues(t *testing.T) {
	m := decode(t, func(l *slog.Logger) { l.Info("m", "v", boom{}, "resource", resource) })
	if v, _ := m["v"].(string); !strings.HasPrefix(v, "!PANIC") || m["resource"] != resource {
		t.Errorf("got %v", m)
	}
}

func TestRedactGroups(t *testing.T) {
	m := decode(t, func(l *slog.Logger) {
		l.WithGroup("req").With("authorization", "x", "method", "GET").
			WithGroup("session").Info("m", "id", "s1", "n", 3)
	})
	req, _ := m["req"].(map[string]any)
	sess, _ := req["session"].(map[string]any)
	if req["authorization"] != Redacted || req["method"] != "GET" {
		t.Errorf("req = %v", req)
	}
	if sess["id"] != Redacted || sess["n"] != Redacted {
		t.Errorf("values under a sensitive group must be hidden: %v", sess)
	}

	m = decode(t, func(l *slog.Logger) {
		l.Info("m", slog.Group("", slog.String("token", "t"), slog.String("ok", "v")))
	})
	if m["token"] != Redacted || m["ok"] != "v" {
		t.Errorf("inline group: %v", m)
	}
}

// WithAttrs redacts once, up front: a LogValuer given to With is resolved
// once, not on every record.
func TestWithAttrsResolvesOnce(t *testing.T) {
	n := 0
	v := countingValuer{&n}
	lg := slog.New(Redact(slog.NewJSONHandler(io.Discard, nil))).With("v", v)
	for range 3 {
		lg.Info("m")
	}
	if n != 1 {
		t.Errorf("LogValue called %d times, want 1", n)
	}
}

type countingValuer struct{ n *int }

func (c countingValuer) LogValue() slog.Value { *c.n++; return slog.StringValue("x") }

func TestRedactDelegates(t *testing.T) {
	inner := slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})
	h := Redact(inner)
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if got, want := h.Enabled(context.Background(), l), inner.Enabled(context.Background(), l); got != want {
			t.Errorf("Enabled(%v) = %v, want %v", l, got, want)
		}
	}
	if Redact(h) != h {
		t.Error("Redact(Redact(h)) wraps twice")
	}
	if h.WithGroup("") != h {
		t.Error(`WithGroup("") must return the receiver`)
	}
}

func BenchmarkHandlerClean(b *testing.B) {
	lg, _ := New(io.Discard, "info", "json")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lg.LogAttrs(ctx, slog.LevelInfo, "decision",
			slog.String("decision", "allow"), slog.String("resource", resource),
			slog.String("subject", "user-42"), slog.Int("status", 200), slog.Duration("took", time.Millisecond))
	}
}

func BenchmarkHandlerBaseline(b *testing.B) {
	lg := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lg.LogAttrs(ctx, slog.LevelInfo, "decision",
			slog.String("decision", "allow"), slog.String("resource", resource),
			slog.String("subject", "user-42"), slog.Int("status", 200), slog.Duration("took", time.Millisecond))
	}
}
