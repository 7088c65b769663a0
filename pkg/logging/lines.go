package logging

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Lines writes records of a fixed shape — a message and string or integer
// attributes, no groups — straight to the process log's AsyncWriter: the
// bytes the logger itself would write for the same record, redacted the
// same way (sensitive keys, scrubbed message and values), without slog's
// Record, the handler chain or the caller lookup Logger.LogAttrs does. The
// audit trail writes one line per request through it; everything else
// logs through the *slog.Logger.
type Lines struct {
	w     *AsyncWriter
	level slog.Leveler
	// second is the last whole second appendTime formatted: every line
	// of that second reuses it and formats only its fraction.
	second atomic.Pointer[formattedSecond]
}

// formattedSecond is one second of one location, formatted as
// time.RFC3339Nano formats it: the date and time before the fraction,
// and the zone after it.
type formattedSecond struct {
	unix       int64
	loc        *time.Location
	date, zone string
}

// appendTime appends t as slog's JSON handler writes a record's time:
// '"' and t.AppendFormat(b, time.RFC3339Nano). A line of the same second
// as the last one costs a comparison and its fraction, not a calendar
// computation. The zone is that of the second (an offset changes on a
// whole second).
func (ls *Lines) appendTime(b []byte, t time.Time) []byte {
	unix, loc := t.Unix(), t.Location()
	f := ls.second.Load()
	if f == nil || f.unix != unix || f.loc != loc {
		if y := t.Year(); y < 0 || y >= 10000 {
			// What slog's handler writes for such a time, error included.
			b = appendJSONString(b, "!ERROR:time.Time year outside of range [0,9999]")
			b = append(b, '"')
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		whole := t.Truncate(time.Second).Format(time.RFC3339) // 2006-01-02T15:04:05Z07:00
		f = &formattedSecond{unix: unix, loc: loc, date: whole[:19], zone: whole[19:]}
		ls.second.Store(f)
	}
	b = append(b, '"')
	b = append(b, f.date...)
	if ns := t.Nanosecond(); ns != 0 {
		// ".999999999": nine digits, the trailing zeros dropped.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, f.zone...)
}

// LinesOf returns the direct path behind l, or nil when it has none: l
// was not built by New in the JSON format over an *AsyncWriter, or it
// carries attributes or groups of its own (With, WithGroup), which the
// direct path would leave out.
func LinesOf(l *slog.Logger) *Lines {
	if r, ok := l.Handler().(*redactor); ok {
		return r.lines
	}
	return nil
}

// Enabled reports whether the logger writes records of level now (the
// level changes on a config reload).
func (ls *Lines) Enabled(level slog.Level) bool { return level >= ls.level.Level() }

// Line is one record being encoded: Start it, add its attributes in the
// order they are to appear, and End it. A Line is not safe for concurrent
// use, and must not be used after End.
type Line struct {
	w     *AsyncWriter
	level slog.Level
	b     []byte
}

// linePool keeps the encoding buffers: a decision's line costs no
// allocation.
var linePool = sync.Pool{New: func() any { return &Line{b: make([]byte, 0, 1024)} }}

// maxPooledLine keeps an occasional huge line's buffer out of the pool.
const maxPooledLine = 16 << 10

// Start begins a record of level with message msg at time t, as slog's
// JSON handler writes its built-in fields: "time", "level", "msg".
func (ls *Lines) Start(t time.Time, level slog.Level, msg string) *Line {
	l := linePool.Get().(*Line)
	l.w, l.level = ls.w, level
	b := append(l.b[:0], `{"time":`...)
	b = ls.appendTime(b, t)
	b = append(b, `","level":`...)
	b = appendJSONString(b, level.String())
	b = append(b, `,"msg":`...)
	msg, _ = scrub(msg)
	l.b = appendJSONString(b, msg)
	return l
}

// Key is an attribute name made ready once for the Lines that use it:
// quoted as the JSON handler quotes it, and checked for a credential
// (sensitiveKey) then rather than on every line.
type Key struct {
	name      string
	json      string // ,"name":
	sensitive bool
}

// NewKey prepares the attribute name name.
func NewKey(name string) Key {
	b := appendJSONString([]byte{','}, name)
	return Key{name: name, json: string(append(b, ':')), sensitive: sensitiveKey(name)}
}

// Name is the attribute name, as given to NewKey.
func (k Key) Name() string { return k.name }

// String adds a string attribute: "[REDACTED]" if the key names a
// credential, else value scrubbed, as Redact does.
func (l *Line) String(k Key, value string) {
	l.b = append(l.b, k.json...)
	if k.sensitive {
		value = Redacted
	} else {
		value, _ = scrub(value)
	}
	l.b = appendJSONString(l.b, value)
}

// Int adds an integer attribute ("[REDACTED]" if the key names a
// credential, as Redact does for any value).
func (l *Line) Int(k Key, v int64) {
	l.b = append(l.b, k.json...)
	if k.sensitive {
		l.b = appendJSONString(l.b, Redacted)
		return
	}
	l.b = strconv.AppendInt(l.b, v, 10)
}

// Fragment is attributes encoded once, to be added as they are to any
// number of Lines (Line.Fragment): the same bytes String and Int would
// append, redaction included, without their cost on every line. Its zero
// value adds nothing.
type Fragment struct{ b string }

// Encode returns the attributes add adds to a Line, as a Fragment.
func Encode(add func(*Line)) Fragment {
	l := Line{b: make([]byte, 0, 128)}
	add(&l)
	return Fragment{b: string(l.b)}
}

// Fragment adds the attributes of f.
func (l *Line) Fragment(f Fragment) { l.b = append(l.b, f.b...) }

// End hands the line to the AsyncWriter (warn and error lines with its
// reserve, as New's handler does) and releases the Line.
func (l *Line) End() {
	l.b = append(l.b, '}', '\n')
	if l.level >= slog.LevelWarn {
		_, _ = urgent{l.w}.Write(l.b)
	} else {
		_, _ = l.w.Write(l.b)
	}
	l.w = nil
	if cap(l.b) <= maxPooledLine {
		linePool.Put(l)
	}
}

// appendJSONString appends s quoted as slog's JSON handler quotes it:
// '"', '\\' and control characters escaped (\n, \r, \t short), invalid
// UTF-8 as \ufffd, U+2028 and U+2029 escaped, everything else as is
// (HTML characters included).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
