package logging

import (
	"encoding/base64"
	"strings"
	"testing"
	"unsafe"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Real-looking credentials. The signature segments are what would let an
// attacker replay a token, so tests check those are gone, not only the
// whole token.
var (
	jwtSig  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	testJWT = b64(`{"alg":"RS256","kid":"k1","typ":"JWT"}`) + "." +
		b64(`{"iss":"https://as.example.com","sub":"alice","aud":"https://mcp.example.com/mcp","exp":1900000000}`) + "." + jwtSig
	// RFC 7516 appendix A.1.
	testJWE = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ." +
		"OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg." +
		"48V1_ALb6US04U3b." +
		"5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A." +
		"XFBoMYUZodetZdvTiFvSkQ"
	// alg "dir": the encrypted-key segment is empty.
	testDirJWE   = b64(`{"alg":"dir","enc":"A128GCM"}`) + "..48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rp.XFBoMYUZodetZdvTiFvSkQ"
	testUnsigned = b64(`{"alg":"none"}`) + "." + b64(`{"sub":"alice"}`) + "."
	testOpaque   = "opaque-7f3c9a1e5b2d4c6f8a0b1c2d3e4f5a6b"
)

func TestScrub(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// JOSE compact serialisations.
		{"JWT", testJWT, Redacted},
		{"JWE", testJWE, Redacted},
		{"JWE dir with empty key segment", testDirJWE, Redacted},
		{"unsecured JWT with trailing dot", testUnsigned, Redacted},
		{"padded segments", "eyJhbGciOiJub25lIn0=.eyJzdWIiOiJ4In0=.c2ln", Redacted},
		{"JWT in a sentence", "rejected token " + testJWT + " for alice", "rejected token " + Redacted + " for alice"},
		{"JWT in JSON", `{"t":"` + testJWT + `"}`, `{"t":"` + Redacted + `"}`},
		{"JWT after a colon", "id_token_hint:" + testJWT, "id_token_hint:" + Redacted},
		{"two JWTs", testJWT + "," + testJWE, Redacted + "," + Redacted},

		// HTTP authentication schemes.
		{"Authorization header", "Authorization: Bearer abc.def", "Authorization: Bearer " + Redacted},
		{"lower-case bearer", "bearer xyz", "bearer " + Redacted},
		{"Basic", "Basic dXNlcjpwYXNz", "Basic " + Redacted},
		{"Basic with padding", "Basic dXNlcg==", "Basic " + Redacted},
		{"DPoP", "DPoP x", "DPoP " + Redacted},
		{"several spaces, scheme kept as written", "BEARER  " + testOpaque, "BEARER  " + Redacted},
		{"header list", "Bearer a1, Basic b2", "Bearer " + Redacted + ", Basic " + Redacted},
		{"repeated scheme", "Bearer Bearer " + testOpaque, "Bearer Bearer " + Redacted},
		{"credential ends at a quote", `h="Bearer ` + testOpaque + `"`, `h="Bearer ` + Redacted + `"`},
		{"JWT as bearer credential", "Bearer " + testJWT, "Bearer " + Redacted},
		// Accepted over-redaction: "of" is shaped like a credential.
		{"bearer in prose", "the bearer of bad news", "the bearer " + Redacted + " bad news"},

		// Query, form and JSON parameters.
		{"code in a callback URL", "GET /cb?code=abc&state=s", "GET /cb?code=" + Redacted + "&state=s"},
		{"access_token then space", "access_token=" + testOpaque + " &x=1", "access_token=" + Redacted + " &x=1"},
		{"refresh grant form",
			"grant_type=refresh_token&refresh_token=" + testOpaque + "&client_id=c",
			"grant_type=refresh_token&refresh_token=" + Redacted + "&client_id=c"},
		{"client authentication form",
			"client_secret=s3cr3t&code_verifier=v3r&client_assertion=a55",
			"client_secret=" + Redacted + "&code_verifier=" + Redacted + "&client_assertion=" + Redacted},
		{"id_token and token", "id_token=x&token=y", "id_token=" + Redacted + "&token=" + Redacted},
		{"token exchange", "subject_token=" + testOpaque, "subject_token=" + Redacted},
		{"case and dash insensitive", "Access-Token=" + testOpaque, "Access-Token=" + Redacted},
		{"value is a scheme and credential", "authorization=Bearer " + testOpaque + " next", "authorization=" + Redacted + " next"},
		{"token endpoint response",
			`{"access_token":"` + testOpaque + `","token_type":"Bearer","expires_in":3600}`,
			`{"access_token":"` + Redacted + `","token_type":"Bearer","expires_in":3600}`},
		{"JSON with spaces", `{"refresh_token" : "` + testOpaque + `"}`, `{"refresh_token" : "` + Redacted + `"}`},
		{"JSON escaped into a string",
			`body="{\"access_token\":\"` + testOpaque + `\"}"`,
			`body="{\"access_token\":\"` + Redacted + `\"}"`},
		{"JSON value with escapes", `{"client_secret":"a\"b"}`, `{"client_secret":"` + Redacted + `"}`},

		{"already redacted", "Bearer " + Redacted + " code=" + Redacted, "Bearer " + Redacted + " code=" + Redacted},
	}
	unchanged := []string{
		"",
		"eyJ",
		"eyJhbGciOiJIUzI1NiJ9",     // a header alone
		"eyJhbGciOiJIUzI1NiJ9.abc", // two segments
		"tokens look like eyJ...",
		"Bearer",
		"Bearer ",
		"Bearer, Basic",
		"BearerToken xyz",
		"nonbasic stuff",
		"basically nothing",
		`Bearer realm="mcp", error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource"`,
		`Bearer error="insufficient_scope", scope="tools:call"`,
		"a plain sentence about decisions, deadlines and databases",
		"issuer=https://x",
		"scope=read write",
		"status_code=200 error_code=E1",
		"response_type=code&code_challenge=abc&code_challenge_method=S256",
		"code=&state=s",
		`{"code":200,"token_type":"Bearer","token":null}`,
		`"access_token":`,
		"decision=allow resource=https://mcp.example.com/mcp subject=user-42",
	}
	for _, in := range unchanged {
		tests = append(tests, struct{ name, in, want string }{"unchanged " + in, in, in})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Scrub(tt.in)
			if got != tt.want {
				t.Errorf("Scrub(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if ref := scrubReference(tt.in); ref != got {
				t.Errorf("byte-by-byte scan gives %q", ref)
			}
			if again := Scrub(got); again != got {
				t.Errorf("Scrub is not idempotent: Scrub(%q) = %q", got, again)
			}
		})
	}
}

// A string without credentials must come back as the same string, without
// allocating: Scrub runs on every audit line.
func TestScrubCleanReturnsInputWithoutAllocating(t *testing.T) {
	for _, s := range []string{
		auditLine,
		"the bearer",
		"issuer=https://as.example.com/ scope=read",
		`{"resource":"https://mcp.example.com/mcp","decision":"deny"}`,
	} {
		t.Run(s, func(t *testing.T) {
			if got := Scrub(s); unsafe.StringData(got) != unsafe.StringData(s) || got != s {
				t.Fatalf("Scrub(%q) = %q, want the input itself", s, got)
			}
			if n := testing.AllocsPerRun(100, func() { Scrub(s) }); n != 0 {
				t.Errorf("Scrub(%q) allocates %v times, want 0", s, n)
			}
		})
	}
}

// FuzzScrub feeds attacker-shaped text around known credentials: whatever
// surrounds them, they must not survive, and scrubbing twice changes
// nothing.
func FuzzScrub(f *testing.F) {
	for _, s := range []string{"", "x", "Bearer", "code=", `"token":"`, "eyJ", "Authorization: ", `{"a":"`, "=", "\\", "Basic"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		out := Scrub(prefix + suffix)
		if again := Scrub(out); again != out {
			t.Fatalf("not idempotent on %q: %q then %q", prefix+suffix, out, again)
		}
		if want := scrubReference(prefix + suffix); out != want {
			t.Fatalf("Scrub(%q) = %q, but the byte-by-byte scan gives %q", prefix+suffix, out, want)
		}
		for _, secret := range []string{testJWT, testJWE, testDirJWE, "Bearer " + testOpaque, "access_token=" + testOpaque} {
			s := prefix + " " + secret + " " + suffix
			out := Scrub(s)
			if strings.Contains(out, testOpaque) || strings.Contains(out, jwtSig) || strings.Contains(out, "XFBoMYUZodetZdvTiFvSkQ") {
				t.Fatalf("credential survived in %q: %q", s, out)
			}
		}
	})
}

// scrubReference is what scrub computes, without its shortcuts: every
// position is offered to the matcher for the byte found there. scrub must
// agree with it on every input.
func scrubReference(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		start, end := -1, 0
		switch {
		case strings.HasPrefix(s[i:], "eyJ"):
			start, end = jwtAt(s, i)
		case s[i] == '=':
			start, end = formValueAt(s, i)
		case s[i] == '"':
			start, end = jsonValueAt(s, i)
		case s[i] == ' ' || s[i] == '\t':
			start, end = schemeCredentialBefore(s, i, last)
		}
		if start < 0 {
			i++
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last, i = end, end
	}
	b.WriteString(s[last:])
	return b.String()
}

// auditLine is a typical 120-byte decision line without a secret.
const auditLine = `decision=allow resource=https://mcp.example.com/mcp client=claude-desktop subject=user-42 tier=l1 method=tools/call ms=3`

func BenchmarkScrubClean(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(auditLine)))
	for b.Loop() {
		Scrub(auditLine)
	}
}

func BenchmarkScrubJWT(b *testing.B) {
	s := "decision=deny reason=expired detail=\"verify " + testJWT + ": token is expired\" resource=https://mcp.example.com/mcp"
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		Scrub(s)
	}
}

// Scrub is scrub's string, for the tests.
func Scrub(s string) string {
	out, _ := scrub(s)
	return out
}
