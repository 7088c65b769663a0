package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os/exec"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonicalURI(t *testing.T) {
	tests := []struct {
		in, want string // want "" : refused
	}{
		// Already canonical: returned as is.
		{"file:///secrets/key", "file:///secrets/key"},
		{"https://api.example.com/a/b?x=1", "https://api.example.com/a/b?x=1"},
		{"urn:isbn:0451450523", "urn:isbn:0451450523"},
		{"custom://host/a/b", "custom://host/a/b"},
		{"custom:", "custom:"},
		{"custom://h", "custom://h"},
		{"custom:///x", "custom:///x"},
		{"file:///", "file:///"},
		{"http://127.0.0.1:8080/p", "http://127.0.0.1:8080/p"},
		{"http://[::1]/x", "http://[::1]/x"},
		{"file:///C:/Users/x", "file:///C:/Users/x"},
		{"file://server/share/x", "file://server/share/x"},

		// Issue #17: the four spellings of the secret.
		{"file:///public/../secrets/key", "file:///secrets/key"},
		{"FILE:///secrets/key", "file:///secrets/key"},
		{"file://localhost/secrets/key", "file:///secrets/key"},
		{"file:///./secrets/key", "file:///secrets/key"},

		// Scheme and host case.
		{"HtTpS://API.Example.COM/Path", "https://api.example.com/Path"},
		{"File://LOCALHOST/x", "file:///x"},
		{"CUSTOM://HOST/Path", "custom://host/Path"},
		{"Urn:ISBN:X", "urn:ISBN:X"},
		// Dot segments, encoded or not, as WHATWG removes them.
		{"file:///a/%2e%2E/b", "file:///b"},
		{"file:///a/.%2e/b", "file:///b"},
		{"file:///a/%2E./b", "file:///b"},
		{"file:///a/%2e/b", "file:///a/b"},
		{"file:///../../x", "file:///x"},
		{"http://h/a/./b/../../../c", "http://h/c"},
		{"http://h/a/..", "http://h/"},
		{"http://h/a/.", "http://h/a/"},
		{"http://h/a/%2E", "http://h/a/"},
		{"custom://h/a/../b", "custom://h/b"},
		{"custom:/a/../b", "custom:/b"},
		{"custom:/a/..//x", "custom:/x"},
		{"custom:/.//x", "custom:/x"},
		{"file:///a/...", "file:///a/..."},
		{"file:///a/..x", "file:///a/..x"},
		// Repeated slashes merged; a trailing slash kept.
		{"file:///secrets//key", "file:///secrets/key"},
		{"file:////secrets/key", "file:///secrets/key"},
		{"http://h//a///b//", "http://h/a/b/"},
		{"custom:a//b", "custom:a/b"},
		// file: without "//".
		{"file:/secrets/key", "file:///secrets/key"},
		{"file://", "file:///"},
		{"file://localhost", "file:///"},
		{"file://localhost./x", "file:///x"},
		// Ports.
		{"http://h:80/x", "http://h/x"},
		{"https://h:443/x", "https://h/x"},
		{"ws://h:80/", "ws://h/"},
		{"wss://h:0443/", "wss://h/"},
		{"ftp://h:21/", "ftp://h/"},
		{"http://h:443/", "http://h:443/"},
		{"http://h:/x", "http://h/x"},
		{"http://h:0080/x", "http://h/x"},
		{"http://h:00/x", "http://h:0/x"},
		{"custom://h:0080/", "custom://h:80/"},
		{"http://h:65535/", "http://h:65535/"},
		// Hosts.
		{"http://h", "http://h/"},
		{"http://example.com./", "http://example.com/"},
		{"http://127.0.0.1./", "http://127.0.0.1/"},
		{"http://0.0.0.0/", "http://0.0.0.0/"},
		{"http://ex_ample.com/", "http://ex_ample.com/"},
		{"http://1e3/", "http://1e3/"},
		{"http://[0:0::1]/", "http://[::1]/"},
		{"http://[::FFFF:1.2.3.4]/", "http://[::ffff:102:304]/"},
		{"http://[2001:DB8:0:0:1:0:0:1]:8080/", "http://[2001:db8::1:0:0:1]:8080/"},
		{"http://[1:0:0:2:0:0:0:3]/", "http://[1:0:0:2::3]/"},
		{"http://[1:0:2:0:3:0:4:0]/", "http://[1:0:2:0:3:0:4:0]/"},
		// Percent-encoding: unreserved and sub-delims decoded, the rest upper case.
		{"file:///%73ecrets/%6Bey", "file:///secrets/key"},
		{"file:///a%3ab%40c%21", "file:///a:b@c!"},
		{"file:///a%3fb", "file:///a%3Fb"},
		{"file:///a%23b", "file:///a%23b"},
		{"file:///a%25", "file:///a%25"},
		{"file:///a%25x1", "file:///a%25x1"},
		{"http://h/x?a=%2f&b=%3f&c=%27", "http://h/x?a=/&b=%3F&c='"},
		{"http://h/x?a='b'", "http://h/x?a='b'"},
		{`http://h/a"b<c>d^e{f}g|h` + "`i[j]k", "http://h/a%22b%3Cc%3Ed%5Ee%7Bf%7Dg%7Ch%60i%5Bj%5Dk"},
		{"http://h/é", "http://h/%C3%A9"},
		{"http://h/%c3%a9", "http://h/%C3%A9"},
		{"http://h/%C3%83©", "http://h/%C3%83%C2%A9"}, // Ã©, one escaped, one literal
		{"http://h/日本", "http://h/%E6%97%A5%E6%9C%AC"},
		{"http://h/😀", "http://h/%F0%9F%98%80"},
		{"http://h/\u00a0", "http://h/%C2%A0"},
		// Query and fragment.
		{"http://h/x?", "http://h/x"},
		{"http://h/x#", "http://h/x"},
		{"http://h/x#frag", "http://h/x"},
		{"http://h/x?q#frag", "http://h/x?q"},
		{"http://h/x?a?b/c", "http://h/x?a?b/c"},
		{"file:///x?v=2", "file:///x"},
		{"file:///x#f", "file:///x"},
		{"urn:a?b#c", "urn:a?b"},
		// Windows drive letters.
		{"file:///c:", "file:///c:"},
		{"file:///a/../C:/x", "file:///C:/x"},
		{"file:///C:/./x/..", "file:///C:/"},

		// Refused: controls, spaces, backslash, bad UTF-8.
		{"", ""},
		{" file:///x", ""},
		{"file:///x ", ""},
		{"file:///a\tb", ""},
		{"file:///a\nb", ""},
		{"file:///a\rb", ""},
		{"file:///a\x00b", ""},
		{"file:///a\x7fb", ""},
		{"file:///a\u0085b", ""},
		{"file:///a\ufffdb", ""},
		{"file:///a\xffb", ""},
		{`file:///a\b`, ""},
		{`http://h\x`, ""},
		// Scheme.
		{"/secrets/key", ""},
		{"secrets/key", ""},
		{"1http://h/", ""},
		{":x", ""},
		{"ht tp://h/", ""},
		// Special schemes without "//", or without a host.
		{"http:host/x", ""},
		{"http:/host/x", ""},
		{"http:///host/x", ""},
		{"http://", ""},
		{"http://?x", ""},
		{"http://:80/", ""},
		{"file:secrets/key", ""},
		{"file:", ""},
		{"file:?x", ""},
		// Authority.
		{"http://u@h/", ""},
		{"http://u:p@h/", ""},
		{"http://@h/", ""},
		{"file://@h/x", ""},
		{"http://h:x/", ""},
		{"http://h:65536/", ""},
		{"http://h:999999/", ""},
		{"http://h:1:2/", ""},
		{"file://h:80/x", ""},
		{"file://h:/x", ""},
		{"custom://:80/", ""},
		{"http://%6cocalhost/", ""},
		{"file://%6cocalhost/x", ""},
		{"http://exämple.com/", ""},
		{"http://a..b/", ""},
		{"http://.a/", ""},
		{"http://./", ""},
		{"a://0..", ""},
		{"http://a../", ""},
		{"http://a!b/", ""},
		{"http://2130706433/", ""},
		{"http://0x7f.1/", ""},
		{"http://0177.0.0.1/", ""},
		{"http://127.1/", ""},
		{"http://127.0.0.01/", ""},
		{"http://256.0.0.1/", ""},
		{"http://1.2.3.4.5/", ""},
		{"http://example.123/", ""},
		{"http://example.0x/", ""},
		{"custom://0x7f.1/", ""},
		{"http://[::1%25eth0]/", ""},
		{"http://[1.2.3.4]/", ""},
		{"http://[::1/", ""},
		{"http://[::1]x/", ""},
		{"http://[:::1]/", ""},
		{"http://[::1.2.3.04]/", ""},
		// Paths.
		{"file:///a//../b", ""},
		{"file:////..", ""},
		{"file:///a/..%2Fsecrets", ""},
		{"file:///a/..%2fsecrets", ""},
		{"file:///a%5Cb", ""},
		{"file:///a%00", ""},
		{"file:///a%0A", ""},
		{"file:///a%7f", ""},
		{"file:///a%C2%85", ""},
		{"file:///a%EF%BF%BD", ""},
		{"file:///a%ff", ""},
		{"file:///a%C0%AE", ""},
		{"file:///a%E0%80%AE", ""},
		{"file:///a%ED%A0%80", ""},
		{"file:///a%C3", ""},
		{"file:///a%C3x", ""},
		{"http://h/%C3©", ""}, // escaped lead byte, literal non-continuation
		{"file:///%252e%252e/x", ""},
		{"file:///a%", ""},
		{"file:///a%2", ""},
		{"file:///a%zz", ""},
		{"urn:a/../b", ""},
		{"urn:./b", ""},
		{"custom:a/%2e%2e/b", ""},
		{"file:///C|/x", ""}, // WHATWG reads C:, a path cleaner C|
		{"file:///c|", ""},
		{"file:///a/../C|/x", ""},
		{"file:///C%3A/../x", ""},
		{"file:///C%7C/x", ""},
		{"file:///%43:/x", ""},
		{"file:///x/C:/y", ""},
		{"file:///x/C|/y", ""},
		{"file:///C:/..", ""},
		{"file:///C:/../x", ""},
		{"file://C:/x", ""},
		{"file://C|/x", ""},
		// Query: controls and malformed escapes refused even where dropped.
		{"http://h/x?a%00", ""},
		{"file:///x?%zz", ""},
		{"http://h/x#%0a", ""},
		{"http://h/x?%252e", ""},
	}
	for _, tc := range tests {
		got, err := CanonicalURI(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrBadURI) {
				t.Errorf("CanonicalURI(%q) = %q, %v; want ErrBadURI", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := CanonicalURI(got); err != nil || again != got {
			t.Errorf("CanonicalURI(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
}

func TestCanonicalURINoAllocation(t *testing.T) {
	for _, s := range []string{"file:///secrets/key", "https://api.example.com/a/b?x=1", "urn:isbn:0451450523"} {
		if n := testing.AllocsPerRun(100, func() {
			if c, err := CanonicalURI(s); err != nil || c != s {
				t.Fatalf("%q: %q, %v", s, c, err)
			}
		}); n != 0 {
			t.Errorf("CanonicalURI(%q) allocates %v times", s, n)
		}
	}
}

// whatwg is the WHATWG URL parser that the official MCP TypeScript SDK
// resolves resource URIs with: new URL(u).href for each input, "" when it
// throws. It runs Node.js, which is part of the test toolchain (the
// end-to-end suite needs it too): without it the test fails.
func whatwg(t *testing.T, uris []string) []string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for the WHATWG differential test: %v", err)
	}
	in, err := json.Marshal(uris)
	if err != nil {
		t.Fatal(err)
	}
	const script = `let s = ''; process.stdin.on('data', d => s += d).on('end', () => {
  process.stdout.write(JSON.stringify(JSON.parse(s).map(u => { try { return new URL(u).href } catch { return '' } })));
});`
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	var hrefs []string
	if err := json.Unmarshal(out, &hrefs); err != nil || len(hrefs) != len(uris) {
		t.Fatalf("node answered %d hrefs for %d URIs: %v", len(hrefs), len(uris), err)
	}
	return hrefs
}

// uriCorpus returns tricky URIs: bases, each mutated by up to three of the
// threat readings (case, dot segments plain and encoded, slashes,
// backslashes, controls, percent-encoding, hosts, ports, IPv4 and IPv6
// forms, user information, drive letters, query and fragment).
func uriCorpus(n int) []string {
	bases := []string{
		"file:///secrets/key", "file:///public/readme.txt", "file:///C:/secrets/key", "file://server/share/x",
		"https://api.example.com/admin/reset", "http://127.0.0.1:8080/p/q?x=1#f", "http://[::1]/x",
		"ws://h/socket", "ftp://h/pub/file", "custom://host/a/b", "custom:opaque/path", "custom:/abs/path",
		"urn:isbn:0451450523", "db://t/1", "mcp://server/tools/x?y",
	}
	inserts := []string{
		"/./", "/../", "/x/../", "/%2e/", "/%2E%2e/", "/.%2e/", "/%2e./", "//", "///", "/..", "/.", "\\", "/..\\",
		"\t", "\n", "\r", " ", "\x00", "\x1f", "\x7f", "\u0085", "\u00a0", "é", "日", "😀", "\ufffd",
		"%00", "%0a", "%0D", "%7f", "%c2%85", "%C3%A9", "%ff", "%c0%ae", "%2f", "%2F", "%5c", "%25", "%252e", "%",
		"%2", "%zz", "%41", "%7e", "%2D", "%3a", "%40", "%3F", "%23", "%5B", "%2A", "%20",
		"?", "#", "?a=b", "#frag", "?a=%2f", "@", ":", ";", "=", "'", "\"", "<", ">", "^", "`", "{", "}", "|", "[", "]",
		"C:", "C|", "c:/", "/C|/", "%43:", "C%3A", "C%7c",
	}
	hosts := []string{
		"localhost", "LOCALHOST", "LocalHost", "localhost.", "%6cocalhost", "%4C%4FCALHOST", "127.0.0.1", "2130706433",
		"0x7f.1", "0177.0.0.1", "127.1", "127.0.0.01", "0x7F000001", "1.2.3.4.", "256.1.1.1", "[::1]", "[0:0::1]",
		"[::ffff:127.0.0.1]", "[::FFFF:7F00:1]", "[fe80::1%25eth0]", "[1.2.3.4]", "API.Example.COM", "api.example.com.",
		"a..b", "ex%61mple.com", "exämple.com", "xn--exmple-cua.com", "u@h", "u:p@h", "@h", "h:80", "h:0080", "h:",
		"h:443", "h:65536", "h:x", "", "C:", "C|", "h_1", "-h-", "[1:0:2:3:4:5:6:7]", "[2001:db8:0:0:1:0:0:1]",
		"[0:0:1:0:0:0:1:0]", "[::]", "[::ffff:0:0]:08080",
	}
	schemes := []string{"file", "FILE", "File", "http", "HTTP", "https", "HTTPS", "ws", "wss", "ftp", "custom", "CUSTOM", "urn"}
	out := make([]string, 0, n)
	// Every insert at every "/" of every base, and every host in every
	// authority.
	for _, b := range bases {
		for i := 0; i < len(b); i++ {
			if b[i] != '/' {
				continue
			}
			for _, ins := range inserts {
				out = append(out, b[:i]+ins+b[i:])
			}
		}
		if i := strings.Index(b, "://"); i > 0 {
			rest := b[i+3:]
			j := strings.IndexAny(rest, "/?#")
			for _, h := range hosts {
				out = append(out, b[:i+3]+h+rest[j:])
			}
		}
	}
	// Then random combinations of up to three mutations.
	rng := rand.New(rand.NewPCG(17, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	for n += len(out); len(out) < n; {
		u := pick(bases)
		for k := rng.IntN(4); k > 0; k-- {
			switch rng.IntN(9) {
			case 0, 1, 2: // insert at a random place
				i := rng.IntN(len(u) + 1)
				u = u[:i] + pick(inserts) + u[i:]
			case 3: // another scheme
				if i := strings.IndexByte(u, ':'); i > 0 {
					u = pick(schemes) + u[i:]
				}
			case 4: // another host
				if i := strings.Index(u, "://"); i > 0 {
					rest := u[i+3:]
					j := strings.IndexAny(rest, "/?#")
					if j < 0 {
						j = len(rest)
					}
					u = u[:i+3] + pick(hosts) + rest[j:]
				}
			case 5: // another separator after the scheme
				if i := strings.IndexByte(u, ':'); i > 0 {
					rest := strings.TrimLeft(u[i+1:], "/")
					u = u[:i+1] + pick([]string{"", "/", "//", "///", "////", "\\\\", "/\\"}) + rest
				}
			case 6: // percent-encode one character, in either case
				if i := rng.IntN(len(u)); u[i] < utf8.RuneSelf {
					f := "%%%02X"
					if rng.IntN(2) == 0 {
						f = "%%%02x"
					}
					u = u[:i] + fmt.Sprintf(f, u[i]) + u[i+1:]
				}
			case 7: // flip the case of one letter
				if i := rng.IntN(len(u)); isAlpha(u[i]) {
					u = u[:i] + string(u[i]^0x20) + u[i+1:]
				}
			case 8: // leading or trailing junk
				j := pick([]string{" ", "\t", "\n", "\x00", "\x1b"})
				if rng.IntN(2) == 0 {
					u = j + u
				} else {
					u += j
				}
			}
		}
		out = append(out, u)
	}
	return out
}

// TestCanonicalURIAgainstWHATWG is the differential test: for every corpus
// URI the gateway accepts, the URI a WHATWG server resolves it to has the
// same canonical form. So a rule written for the canonical form sees every
// request the server will answer from that resource. The canonical forms
// themselves are fed back too.
func TestCanonicalURIAgainstWHATWG(t *testing.T) {
	corpus := uriCorpus(4000)
	var accepted, canon []string
	for _, u := range corpus {
		if c, err := CanonicalURI(u); err == nil {
			accepted = append(accepted, u)
			canon = append(canon, c)
		}
	}
	if len(accepted) < len(corpus)/5 {
		t.Fatalf("only %d of %d corpus URIs accepted: the corpus tests little", len(accepted), len(corpus))
	}
	hrefs := whatwg(t, append(append([]string(nil), accepted...), canon...))
	fails := 0
	for i, u := range accepted {
		for _, h := range []string{hrefs[i], hrefs[len(accepted)+i]} {
			if h == "" {
				continue // the server cannot resolve it either
			}
			got, err := CanonicalURI(h)
			if err != nil || got != canon[i] {
				fails++
				if fails <= 20 {
					t.Errorf("%q: canonical %q, but WHATWG reads %q, canonical %q (%v)", u, canon[i], h, got, err)
				}
			}
		}
	}
	t.Logf("%d corpus URIs, %d accepted, %d disagreements", len(corpus), len(accepted), fails)
}

// TestCanonicalURIAgainstPathCleaning: the other common reading of a
// hierarchical URI, by servers that decode the path and clean it (Go's
// net/url and path.Clean; Node's path.normalize does the same), lands on the
// same canonical form. Dot segments after "//" are where it parts from
// WHATWG: such URIs must be refused, not resolved one way.
func TestCanonicalURIAgainstPathCleaning(t *testing.T) {
	fails, checked := 0, 0
	for _, u := range uriCorpus(4000) {
		c, err := CanonicalURI(u)
		if err != nil {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil || !strings.HasPrefix(pu.Path, "/") || pu.Opaque != "" {
			continue
		}
		// The canonical URI with its path replaced by the cleaned reading.
		cu, err := url.Parse(c)
		if err != nil {
			t.Fatalf("canonical %q does not parse: %v", c, err)
		}
		cu.Path, cu.RawPath = path.Clean(pu.Path), ""
		reading := cu.String()
		got, err := CanonicalURI(reading)
		checked++
		// A trailing slash names the same directory to a path cleaner.
		if err != nil || dirName(got) != dirName(c) {
			fails++
			if fails <= 20 {
				t.Errorf("%q: canonical %q, but a path cleaner reads %q, canonical %q (%v)", u, c, reading, got, err)
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d URIs checked", checked)
	}
	t.Logf("%d URIs checked, %d disagreements", checked, fails)
}

// dirName is a canonical URI without its query and trailing slash.
func dirName(c string) string {
	if i := strings.IndexByte(c, '?'); i >= 0 {
		c = c[:i]
	}
	return strings.TrimSuffix(c, "/")
}

func FuzzCanonicalURI(f *testing.F) {
	for _, s := range []string{
		"file:///secrets/key", "file:///public/../secrets/key", "FILE:///secrets/key", "file://localhost/secrets/key",
		"file:///./secrets/key", "https://API.example.com:443/a/%2e%2e/b?x=%2f#f", "http://[::ffff:1.2.3.4]:0080/",
		"custom:a/b", "urn:x:y", "file:///C:/x/../y", "http://h/%C3%A9/é", "file:///a//../b", "http://0x7f.1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalURI(s)
		if err != nil {
			if !errors.Is(err, ErrBadURI) || c != "" {
				t.Fatalf("CanonicalURI(%q) = %q, %v", s, c, err)
			}
			return
		}
		for i := 0; i < len(c); i++ {
			if b := c[i]; b <= ' ' || b >= 0x7f || b == '\\' || b == '#' {
				t.Fatalf("CanonicalURI(%q) = %q holds %q", s, c, b)
			}
		}
		again, err := CanonicalURI(c)
		if err != nil || again != c {
			t.Fatalf("CanonicalURI(%q) = %q, but CanonicalURI(%q) = %q, %v", s, c, c, again, err)
		}
		// A canonical URI is its own canonical pattern, and matches itself.
		if !strings.ContainsAny(c, "*?") {
			if p, why := canonURI(c, true); why != "" || p != c {
				t.Fatalf("canonical %q is not a canonical pattern: %q %s", c, p, why)
			}
		}
	})
}

func TestCheckRuleName(t *testing.T) {
	tests := []struct {
		method, name string
		canonical    string // the suggestion
		err          bool
	}{
		{"resources/read", "file:///secrets/*", "", false},
		{"resources/*", "file:///secrets/*", "", false},
		{"*", "file:///secrets/*", "", false},
		{"resources/read", "*", "", false},
		{"resources/read", "**", "", false},
		{"resources/read", "https://*.example.com/*", "", false},
		{"resources/read", "https://api.example.com/items?*", "", false},
		{"resources/read", "file:///secrets/?ey", "", false},
		{"resources/read", "file:///s%C3%A9crets/*", "", false},
		{"resources/read", "urn:isbn:*", "", false},
		{"resources/read", "*secrets*", "", false},
		{"resources/read", "*/secrets/*", "", false},
		{"resources/read", "*%3F*", "", false},
		// Not canonical: the spelling to write instead.
		{"resources/read", "FILE:///secrets/*", "file:///secrets/*", true},
		{"resources/*", "file://localhost/secrets/*", "file:///secrets/*", true},
		{"*", "file:///public/../secrets/*", "file:///secrets/*", true},
		{"resources/read", "file:///%73ecrets/*", "file:///secrets/*", true},
		{"resources/read", "https://API.example.com:443/*", "https://api.example.com/*", true},
		{"resources/read", "file:///s%c3%a9crets/*", "file:///s%C3%A9crets/*", true},
		{"resources/read", "file:///sécrets/*", "file:///s%C3%A9crets/*", true},
		{"resources/read", "file:///secrets//*", "file:///secrets/*", true},
		{"resources/read", "file:///secrets/*#x", "file:///secrets/*", true},
		{"resources/read", "file:/secrets/*", "file:///secrets/*", true},
		// Cannot be canonical.
		{"resources/read", "file://%6cocalhost/*", "", true},
		{"resources/read", "file:secrets/*", "", true},
		{"resources/read", "file:///a/%2A", "", true},
		{"resources/read", "http:host/*", "", true},
		{"resources/read", "secrets", "", true},
		{"resources/read", "*%2f*", "", true},
		{"resources/read", "*%41*", "", true},
		{"resources/read", "*%3f*", "", true},
		{"resources/read", "* *", "", true},
		{"resources/read", "*é*", "", true},
		{"resources/read", `*\*`, "", true},
		{"resources/read", "*#*", "", true},
		// Tool and prompt names are not URIs.
		{"tools/call", "FILE:///x", "", false},
		{"tools/call", "Delete me", "", false},
		{"*", "delete_*", "", false},
		{"*", "Code review", "", false},
		{"*", "Code *", "", false},
		{"prompts/*", "x", "", false},
	}
	for _, tc := range tests {
		c, err := CheckRuleName(tc.method, tc.name)
		if (err != nil) != tc.err || c != tc.canonical {
			t.Errorf("CheckRuleName(%q, %q) = %q, %v; want %q, error %v", tc.method, tc.name, c, err, tc.canonical, tc.err)
		}
	}
}

func BenchmarkCanonicalURI(b *testing.B) {
	for _, s := range []string{"file:///secrets/key", "FILE://localhost/public/../secrets/%6Bey"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CanonicalURI(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
