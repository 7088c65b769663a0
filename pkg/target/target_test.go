package target

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"mcp.example.com", "mcp.example.com"},
		{"MCP.Example.COM", "mcp.example.com"},
		{"mcp.example.com.", "mcp.example.com"},
		{"mcp.example.com:8443", "mcp.example.com"},
		{"mcp.example.com.:8443", "mcp.example.com"},
		{"127.0.0.1:9001", "127.0.0.1"},
		{"[::1]:443", "::1"},
		{"[FE80::1]", "fe80::1"},
		{"[0:0:0:0:0:0:0:1]:8443", "::1"},
		{"xn--mnchen-3ya.example", "xn--mnchen-3ya.example"},
		{"in_ternal.svc", "in_ternal.svc"},
	} {
		got, err := Host(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Host(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{".", "..", "a..b", ".a", "a..", "a b", "a%62", "münchen.example", "user@host", "host:", "host:abc",
		"host:1:2", "host:123456", "[::1", "[]", "[::1]:x", "[::1]x", "[::g]", "[.]", "[::1:]", "[127.0.0.1]", "[fe80::1%eth0]", "a/b", `a\b`, "a\x00b"} {
		if got, err := Host(in); !errors.Is(err, ErrHost) {
			t.Errorf("Host(%q) = %q, %v; want ErrHost", in, got, err)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/mcp", "/mcp"},
		{"/MCP", "/MCP"},
		{"/mcp/", "/mcp/"},
		{"/%6Dcp", "/mcp"},
		{"/%6dcp", "/mcp"},
		{"/a%2fb", "/a%2Fb"},
		{"/a%2Fb", "/a%2Fb"},
		{"/public/../mcp", "/mcp"},
		{"/public/%2e%2e/mcp", "/mcp"},
		{"/public/.%2E/mcp", "/mcp"},
		{"/./mcp", "/mcp"},
		{"//mcp//x", "/mcp/x"},
		{"/mcp/.", "/mcp/"},
		{"/mcp/x/..", "/mcp/"},
		{"/..", "/"},
		{"/../../mcp", "/mcp"},
		{"/mcp;x", "/mcp;x"},
		{`/a\b`, `/a\b`},
		{"/a%20b", "/a%20b"},
		{"/~user/%7E", "/~user/~"},
	} {
		got, err := Path(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "mcp", "*", "/a b", "/a\tb", "/a#b", "/a%", "/a%2", "/a%zz", "/a%00b", "/a%0Ab", "/a%7f", "/é", "/a\x7fb"} {
		if got, err := Path(in); !errors.Is(err, ErrPath) {
			t.Errorf("Path(%q) = %q, %v; want ErrPath", in, got, err)
		}
	}
}

func TestPathDoesNotAllocateWhenCanonical(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _, _ = Path("/mcp/tools/x") }); n != 0 {
		t.Errorf("Path of a canonical path: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Host("mcp.example.com:443") }); n != 0 {
		t.Errorf("Host of a canonical host: %v allocations, want 0", n)
	}
}

func TestReadings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // each must be among the readings
	}{
		{"/x/..%2Fmcp", []string{"/mcp"}},
		{"/mcp%2F", []string{"/mcp/"}},
		{"/mcp;x", []string{"/mcp"}},
		{"/mcp;x/y", []string{"/mcp/y"}},
		{`/x\..\mcp`, []string{"/mcp"}},
		{"/x/..%5Cmcp", []string{"/mcp"}},
		{"/x/..%252Fmcp", []string{"/mcp"}},
		{"/%6Dcp", []string{"/%6Dcp"}},
		{"/%2e%2e/mcp", []string{"/%2e%2e/mcp"}},
	} {
		got := Readings(tc.in)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("Readings(%q) = %q, want it to include %q", tc.in, got, w)
			}
		}
	}
	if got := Readings("/mcp/tools/call"); got != nil {
		t.Errorf("Readings of a plain path = %q, want none", got)
	}
}

func TestHasPrefix(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		fold, want   bool
	}{
		{"/mcp", "/mcp", false, true},
		{"/mcp/x", "/mcp", false, true},
		{"/mcpx", "/mcp", false, false},
		{"/MCP", "/mcp", false, false},
		{"/MCP/x", "/mcp", true, true},
		{"/anything", "", false, true},
		{"/mc", "/mcp", true, false},
	} {
		if got := HasPrefix(tc.path, tc.prefix, tc.fold); got != tc.want {
			t.Errorf("HasPrefix(%q, %q, %v) = %v", tc.path, tc.prefix, tc.fold, got)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/mcp", "/mcp", true},
		{"/", "/", true},
		{"/a/../mcp", "/mcp", false},
		{"/%6Dcp", "/mcp", false},
		{"/mcp;v=1", "", false},
		{`/a\b`, "", false},
		{"/a b", "", false},
	} {
		got, ok := Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzTarget: Host and Path never panic, their results are fixed points
// (canonical forms are canonical), and every reading is a path.
func FuzzTarget(f *testing.F) {
	for _, s := range []string{"/mcp", "/%6Dcp", "/x/..%2Fmcp", "/mcp;x", `/a\..\b`, "//a//b/", "/%252F", "/%", "/a%2"} {
		f.Add("mcp.example.com.", s)
	}
	f.Fuzz(func(t *testing.T, host, p string) {
		if h, err := Host(host); err == nil {
			if h2, err := Host(h); err != nil && !strings.Contains(h, ":") || err == nil && h2 != h {
				t.Fatalf("Host(%q) = %q, but Host(%q) = %q, %v", host, h, h, h2, err)
			}
		}
		c, err := Path(p)
		if err != nil {
			return
		}
		if c2, err := Path(c); err != nil || c2 != c {
			t.Fatalf("Path(%q) = %q, but Path(%q) = %q, %v", p, c, c, c2, err)
		}
		for _, r := range Readings(p) {
			if !strings.HasPrefix(r, "/") {
				t.Fatalf("Readings(%q) has %q, not a path", p, r)
			}
		}
	})
}
