package wire

import (
	"strings"
	"testing"
)

func TestHeaderNameInterning(t *testing.T) {
	names := []string{
		"", "a", "x-custom", ":AUTHORITY", "Content-Type", "content-type",
		"cookie", "COOKIE", "coo\u212Aie", "ÀCCEPT", "accept\x00", "accep",
		"X-Envoy-Expected-Rq-Timeout-Ms", "x-envoy-expected-rq-timeout-ms-",
		strings.Repeat("A", maxInterned+1), "MCP-Session-Id", "\xff",
	}
	for _, s := range names {
		if got, want := headerName([]byte(s)), s; got != want {
			t.Errorf("headerName(%q) = %q, want %q", s, got, want)
		}
		if got, want := lowerHeaderName([]byte(s)), strings.ToLower(s); got != want {
			t.Errorf("lowerHeaderName(%q) = %q, want %q", s, got, want)
		}
	}
	for _, s := range []string{"Authorization", "authorization", "MCP-Session-Id", ":path", "X-Envoy-Expected-Rq-Timeout-Ms"} {
		b := []byte(s)
		if n := testing.AllocsPerRun(10, func() { _ = lowerHeaderName(b) }); n != 0 {
			t.Errorf("lowerHeaderName(%q) allocates %v times", s, n)
		}
		if s == strings.ToLower(s) {
			if n := testing.AllocsPerRun(10, func() { _ = headerName(b) }); n != 0 {
				t.Errorf("headerName(%q) allocates %v times", s, n)
			}
		}
	}
}
