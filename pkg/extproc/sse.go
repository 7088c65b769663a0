package extproc

import "bytes"

// sseFilter filters a text/event-stream as it arrives (HTML Living
// Standard, "Server-sent events", §9.2.6 interpreting an event stream):
// events end at an empty line; lines end at CRLF, LF or CR; a field's
// value follows its first colon, less one leading space; data fields
// join with LF; an event whose type is empty or "message" is the one MCP
// clients read as a JSON-RPC message. Every other event, and every line
// of a rewritten event but its data, passes as it came.
type sseFilter struct {
	keep    keepFunc
	max     int
	pending []byte // the bytes of the events not complete yet
	scan    int    // how far pending has been searched for an event's end
	line    int    // where the line being searched starts in pending
	started bool   // the first event has been seen (a BOM only leads the stream)
	failed  bool   // over the bound: the rest of the stream is dropped
	removed Removed
	errs    []error // why events were replaced by a JSON-RPC error
}

func newSSEFilter(keep keepFunc, maxEvent int) *sseFilter {
	return &sseFilter{keep: keep, max: maxEvent}
}

// feed takes the next chunk of the stream and returns what to pass on now:
// every event that the chunk completes, filtered. final is the end of the
// stream: an event left incomplete then is dropped, as a client drops it.
func (s *sseFilter) feed(chunk []byte, final bool) []byte {
	out := []byte{} // never nil: an empty answer clears the chunk
	if s.failed {
		return out
	}
	s.pending = append(s.pending, chunk...)
	start, line, i := 0, s.line, s.scan
	for i < len(s.pending) {
		j := bytes.IndexAny(s.pending[i:], "\r\n")
		if j < 0 {
			i = len(s.pending) // the line goes on in the next chunk
			break
		}
		j += i
		eol := 1
		if s.pending[j] == '\r' {
			if j+1 == len(s.pending) && !final {
				i = j // a CR last: wait for what follows, it may be LF
				break
			}
			if j+1 < len(s.pending) && s.pending[j+1] == '\n' {
				eol = 2
			}
		}
		end := j + eol
		if j == line { // an empty line ends an event
			out = append(out, s.event(s.pending[start:end])...)
			start = end
		}
		i, line = end, end
	}
	rest := len(s.pending) - start
	if final {
		s.pending, s.scan, s.line = nil, 0, 0
		return out
	}
	if rest > s.max {
		s.fail(ErrTooLarge)
		return append(out, sseError(ErrTooLarge)...)
	}
	// Keep the incomplete event at the front of pending.
	n := copy(s.pending, s.pending[start:])
	s.pending = s.pending[:n]
	s.scan, s.line = i-start, line-start
	return out
}

// fail drops the rest of the stream.
func (s *sseFilter) fail(err error) {
	s.failed = true
	s.errs = append(s.errs, err)
	s.pending = nil
}

const bom = "\xEF\xBB\xBF"

// event filters one complete event (its lines and the empty line ending it).
func (s *sseFilter) event(ev []byte) []byte {
	lines := ev
	if !s.started {
		s.started = true
		// One leading U+FEFF is stripped by clients before parsing.
		lines = bytes.TrimPrefix(lines, []byte(bom))
	}
	var (
		data      []byte
		dataLines int
		typ       []byte
	)
	forEachLine(lines, func(line, _ []byte) {
		name, value := field(line)
		switch string(name) {
		case "data":
			if dataLines > 0 {
				data = append(data, '\n')
			}
			data = append(data, value...)
			dataLines++
		case "event":
			typ = value
		}
	})
	if dataLines == 0 || (len(typ) > 0 && string(typ) != "message") || len(bytes.TrimSpace(data)) == 0 {
		return ev
	}
	out, changed, removed, err := filterMessage(data, s.keep)
	if err != nil {
		out, changed = errorMessage(messageID(data), err), true
		s.errs = append(s.errs, err)
	}
	if !changed {
		return ev
	}
	for k := range removed {
		s.removed[k] += removed[k]
	}
	b := make([]byte, 0, len(ev)+len(out)-len(data)+8)
	if len(lines) < len(ev) {
		b = append(b, bom...)
	}
	wrote := false
	forEachLine(lines, func(line, eol []byte) {
		name, _ := field(line)
		if string(name) != "data" {
			b = append(b, line...)
			b = append(b, eol...)
			return
		}
		if !wrote {
			wrote = true
			b = append(b, "data: "...)
			b = append(b, out...)
			b = append(b, '\n')
		}
	})
	return b
}

// forEachLine calls fn with each line of ev and its end of line.
func forEachLine(ev []byte, fn func(line, eol []byte)) {
	for len(ev) > 0 {
		j := bytes.IndexAny(ev, "\r\n")
		if j < 0 {
			fn(ev, nil)
			return
		}
		eol := 1
		if ev[j] == '\r' && j+1 < len(ev) && ev[j+1] == '\n' {
			eol = 2
		}
		fn(ev[:j], ev[j:j+eol])
		ev = ev[j+eol:]
	}
}

// field splits a line into its field name and value; a comment (a line
// starting with a colon) has no name.
func field(line []byte) (name, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	value = line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return line[:i], value
}

// sseError is a message event carrying the JSON-RPC error that replaces
// the rest of a stream.
func sseError(err error) []byte {
	b := append([]byte("event: message\ndata: "), errorMessage("null", err)...)
	return append(b, "\n\n"...)
}
