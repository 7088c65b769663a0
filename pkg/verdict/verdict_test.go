package verdict

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

func TestCodecRoundTrip(t *testing.T) {
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	cases := []Verdict{
		{Claims: &token.Claims{Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "https://auth.example.com", ClientID: "c1",
			Audience: []string{"https://mcp.example.com/mcp", "x"}, Scopes: []string{"mcp:tools", "mcp:write"}, Scope: "mcp:tools mcp:write"}}},
		{Claims: &token.Claims{Expiry: exp, Grant: &token.Grant{Issuer: "i"}}},
		{Claims: &token.Claims{Subject: "bob", Expiry: exp, Grant: &token.Grant{Issuer: "i"},
			Extra: map[string]any{"tenant": "acme", "groups": []any{"ops", "dev"}, "level": 3.0}}},
		{Claims: &token.Claims{Subject: "carol", Expiry: exp, Grant: &token.Grant{Issuer: "i", ClientID: "c1", Audience: []string{"a"},
			Scopes: []string{"mcp:tools"}, Scope: "mcp:tools", JKT: thumbprint}}},
		{Claims: &token.Claims{Subject: "dave", Expiry: exp, Grant: &token.Grant{Issuer: "i", JKT: thumbprint},
			Extra: map[string]any{"tenant": "acme"}}},
		{Claims: &token.Claims{Subject: "erin", Expiry: exp, IssuedAt: 1_800_000_000, SessionID: "08a5019c-17e1-4977-8f42-65a12843ea02",
			Grant: &token.Grant{Issuer: "i", ClientID: "c1", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools"}}},
		{Claims: &token.Claims{Subject: "frank", Expiry: exp, IssuedAt: 1, SessionID: "s", Grant: &token.Grant{Issuer: "i", JKT: thumbprint},
			Extra: map[string]any{"tenant": "acme"}}},
	}
	for _, e := range []error{token.ErrMalformed, token.ErrCritical, token.ErrMissingExpiry, token.ErrAlgorithm,
		token.ErrUnknownIssuer, token.ErrSignature, token.ErrExpired, ErrWrongAudience, ErrRevoked, token.ErrInactive, token.ErrNotAccessToken} {
		cases = append(cases, Verdict{Err: e})
	}
	// With a table, each case is decoded twice: the first builds and interns its grant, the
	// second finds it there (the path a replica takes for every token of a known grant).
	interning := Codec{Grants: NewGrants(64)}
	for _, v := range cases {
		b, err := Codec{}.Encode(v)
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		got, err := Codec{}.Decode(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", v, err)
		}
		for i := range 2 {
			interned, err := interning.Decode(b)
			if err != nil {
				t.Fatalf("decode %+v with a table: %v", v, err)
			}
			if !reflect.DeepEqual(interned, got) {
				t.Errorf("decoded with a table (%d)\n got %+v\nwant %+v", i, interned.Claims, got.Claims)
			}
			if v.Err == nil && interning.Grants.Intern(got.Claims.Grant) != interned.Claims.Grant {
				t.Errorf("decoded with a table (%d): the grant is not the table's", i)
			}
		}
		if v.Err != nil {
			if got.Err != v.Err || got.Claims != nil {
				t.Errorf("failure %v came back as %+v", v.Err, got)
			}
			if len(b) != 3 {
				t.Errorf("failure encoded in %d bytes", len(b))
			}
			continue
		}
		if !reflect.DeepEqual(got.Claims, v.Claims) {
			t.Errorf("claims\n got %+v\nwant %+v", got.Claims, v.Claims)
		}
		// Every valid verdict is written in the one format that holds iat
		// and sid.
		if b[0] != verdictFormatRevocable {
			t.Errorf("format %d, want %d", b[0], verdictFormatRevocable)
		}
	}
	// A wrapped failure keeps its class.
	b, _ := Codec{}.Encode(Verdict{Err: errors.Join(token.ErrSignature, errors.New("detail"))})
	if got, _ := (Codec{}).Decode(b); got.Err != token.ErrSignature {
		t.Errorf("wrapped failure decoded as %v", got.Err)
	}
}

func TestCodecRefuses(t *testing.T) {
	for _, e := range []error{token.ErrUnavailable, token.ErrNotYetValid, token.ErrUnknownKey, errors.New("other")} {
		if _, err := (Codec{}).Encode(Verdict{Err: e}); err == nil {
			t.Errorf("%v is not a cacheable failure, but encoded", e)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 0, 0}, {1, 1, 0}, {1, 1, 200}, {1, 1, 6, 0}, {1, 7, 0}, {1, 0, 5, 'a'}} {
		if v, err := (Codec{}).Decode(b); err == nil {
			t.Errorf("decoded %v as %+v", b, v)
		}
	}
}

// TestCodecRefusesIdentityUnfitForHeaders: a valid verdict whose subject,
// client id or scopes no verified token of this version could hold (an
// older replica's, or one put into Redis by hand) is not decoded, with a
// table or without: its values would go upstream as header values.
func TestCodecRefusesIdentityUnfitForHeaders(t *testing.T) {
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	for name, c := range map[string]*token.Claims{
		"CRLF in the subject":      {Subject: "alice\r\nx-extauthz-role: admin", Expiry: exp, Grant: &token.Grant{Issuer: "i", Scopes: []string{"mcp:tools"}}},
		"space around the subject": {Subject: " alice", Expiry: exp, Grant: &token.Grant{Issuer: "i"}},
		"NUL in the client id":     {Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "i", ClientID: "c\x00"}},
		"a tab inside a scope":     {Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "i", Scopes: []string{"mcp:write\tadmin"}}},
		"a space inside a scope":   {Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "i", Scopes: []string{"mcp:tools admin"}}},
		"an empty scope":           {Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "i", Scopes: []string{""}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Codec{}.Encode(Verdict{Claims: c})
			if err != nil {
				t.Fatal(err)
			}
			for _, codec := range []Codec{{}, {Grants: NewGrants(4)}} {
				if v, err := codec.Decode(b); err == nil {
					t.Errorf("decoded as %+v", v.Claims)
				}
			}
		})
	}
	// UTF-8 beyond ASCII stays, as the verification accepts it.
	b, _ := Codec{}.Encode(Verdict{Claims: &token.Claims{Subject: "zoë", Expiry: exp, Grant: &token.Grant{Issuer: "i"}}})
	if v, err := (Codec{}).Decode(b); err != nil || v.Claims.Subject != "zoë" {
		t.Errorf("a UTF-8 subject: %+v, %v", v.Claims, err)
	}
}

// FuzzVerdictDecode: shared-cache contents are never trusted to be well
// formed; decoding must not panic and must round-trip what it accepts.
func FuzzVerdictDecode(f *testing.F) {
	v := Verdict{Claims: &token.Claims{Subject: "s", Expiry: time.UnixMilli(1e12), Grant: &token.Grant{Issuer: "i", Audience: []string{"a"}, Scopes: []string{"x"}, Scope: "x"}}}
	b, _ := Codec{}.Encode(v)
	f.Add(b)
	f.Add([]byte{1, 1, 6})
	v.Claims.JKT = thumbprint
	b, _ = Codec{}.Encode(v)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Codec{}.Decode(b)
		if err != nil {
			return
		}
		if v.Claims != nil && b[0] != verdictFormatRevocable {
			t.Fatalf("format %d decoded as a valid verdict", b[0])
		}
		if c := v.Claims; c != nil && !token.IdentityHeaderSafe(c.Subject, c.ClientID, c.Scopes) {
			t.Fatalf("decoded an identity unfit for header values: %+v", c)
		}
		again, err := Codec{}.Encode(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		v2, err := Codec{}.Decode(again)
		if err != nil || (v.Claims == nil) != (v2.Claims == nil) || v.Err != v2.Err {
			t.Fatalf("round trip changed %+v into %+v (%v)", v, v2, err)
		}
		// Decoding with a grant table, which looks the grant up before building one, reads
		// the same, the first time and when the grant is found in the table.
		interning := Codec{Grants: NewGrants(4)}
		for range 2 {
			if iv, err := interning.Decode(b); err != nil || !reflect.DeepEqual(iv, v) {
				t.Fatalf("with a table %+v (%v), without %+v", iv, err, v)
			}
		}
		if v.Claims != nil && (v.Claims.JKT != v2.Claims.JKT || v.Claims.IssuedAt != v2.Claims.IssuedAt || v.Claims.SessionID != v2.Claims.SessionID) {
			t.Fatalf("round trip changed %+v into %+v", v.Claims, v2.Claims)
		}
	})
}

func TestGrantsAreShared(t *testing.T) {
	g := NewGrants(2)
	a := &token.Grant{Issuer: "i", ClientID: "c", Audience: []string{"a"}, Scopes: []string{"x", "y"}, Scope: "x y"}
	same := &token.Grant{Issuer: "i", ClientID: "c", Audience: []string{"a"}, Scopes: []string{"x", "y"}, Scope: "x y"}
	if g.Intern(a) != a || g.Intern(same) != a {
		t.Fatal("an equal grant was not shared")
	}
	// Equal strings in other fields must not collide.
	tricky := &token.Grant{Issuer: "i", ClientID: "c", Audience: []string{"a", "x"}, Scopes: []string{"y"}, Scope: "y"}
	if g.Intern(tricky) == a {
		t.Fatal("different grants were merged")
	}
	// Full: a new grant is used, not stored.
	full := &token.Grant{Issuer: "other"}
	if g.Intern(full) != full || g.Intern(&token.Grant{Issuer: "other"}) == full {
		t.Fatal("the table grew past its bound")
	}
	var none *Grants
	if none.Intern(a) != a {
		t.Fatal("a nil table must pass grants through")
	}
}

// thumbprint is a JWK SHA-256 thumbprint (RFC 7638; RFC 9449 §6.1's example).
const thumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

// TestCodecBinding: the shared cache must never turn a DPoP-bound verdict
// into an unbound one, which would let its token pass as a Bearer token.
func TestCodecBinding(t *testing.T) {
	exp := time.UnixMilli(1_900_000_000_000)
	bound := Verdict{Claims: &token.Claims{Subject: "alice", Expiry: exp,
		Grant: &token.Grant{Issuer: "i", ClientID: "c", Audience: []string{"a"}, Scopes: []string{"s"}, Scope: "s", JKT: thumbprint}}}
	b, err := Codec{}.Encode(bound)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a format no release before the binding reads", func(t *testing.T) {
		// Releases before the binding read formats 1 and 2 only; any
		// other is a miss to them, and they verify (and refuse) the token.
		if b[0] == verdictFormat || b[0] == verdictFormatExtra {
			t.Fatalf("bound verdict written in format %d", b[0])
		}
	})
	t.Run("every truncation is refused", func(t *testing.T) {
		for n := range len(b) {
			if v, err := (Codec{}).Decode(b[:n]); err == nil {
				t.Fatalf("%d of %d bytes decoded as %+v (grant %+v)", n, len(b), v.Claims, v.Claims.Grant)
			}
		}
	})
	t.Run("relabelled as an earlier format, refused", func(t *testing.T) {
		for _, f := range []byte{verdictFormat, verdictFormatExtra, verdictFormatBound, verdictFormatBoundExtra} {
			c := append([]byte(nil), b...)
			c[0] = f
			if v, err := (Codec{}).Decode(c); err == nil {
				t.Fatalf("format %d decoded as %+v (grant %+v)", f, v.Claims, v.Claims.Grant)
			}
		}
	})
	t.Run("a thumbprint length other than 0 or 32, refused", func(t *testing.T) {
		// The thumbprint's length prefix sits 34 bytes before the end
		// (then 32 bytes and the empty kept claims' length).
		i := len(b) - 34
		if b[i] != thumbprintSize {
			t.Fatalf("layout: byte %d is %d", i, b[i])
		}
		for _, n := range []byte{1, 31, 33} {
			c := append([]byte(nil), b...)
			c[i] = n
			if v, err := (Codec{}).Decode(c); err == nil {
				t.Fatalf("length %d decoded as %+v (grant %+v)", n, v.Claims, v.Claims.Grant)
			}
		}
	})
	t.Run("interned apart from the unbound grant", func(t *testing.T) {
		vc := Codec{Grants: NewGrants(16)}
		unbound := Verdict{Claims: &token.Claims{Subject: "alice", Expiry: exp, Grant: &token.Grant{Issuer: "i", ClientID: "c",
			Audience: []string{"a"}, Scopes: []string{"s"}, Scope: "s"}}}
		ub, _ := vc.Encode(unbound)
		u, err := vc.Decode(ub)
		if err != nil {
			t.Fatal(err)
		}
		g, err := vc.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if g.Claims.JKT != thumbprint || u.Claims.JKT != "" || g.Claims.Grant == u.Claims.Grant {
			t.Fatalf("bound %+v, unbound %+v", g.Claims.Grant, u.Claims.Grant)
		}
	})
	t.Run("a thumbprint that would not read back is not written", func(t *testing.T) {
		for _, jkt := range []string{thumbprint[:42], thumbprint + "=", thumbprint + "A", "0ZcOCORZNYy+DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
			"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4J", thumbprint[:20] + "\n" + thumbprint[20:]} {
			v := Verdict{Claims: &token.Claims{Expiry: exp, Grant: &token.Grant{Issuer: "i", JKT: jkt}}}
			if b, err := (Codec{}).Encode(v); err == nil {
				t.Errorf("JKT %q encoded as %v", jkt, b)
			}
		}
	})
}

// TestCodecEarlierFormats: valid verdicts of earlier releases hold no iat
// or sid, which watermarks match on: they are a miss (the token is
// verified again), never claims with an iat or sid made up. Failures,
// which carry none, still decode.
func TestCodecEarlierFormats(t *testing.T) {
	// Format 1 as earlier releases wrote it: kind valid, subject "s",
	// issuer "i", client "", no audience, no scope, expiry 1000 ms.
	one := []byte{verdictFormat, KindValid, 1, 's', 1, 'i', 0, 0, 0, 0xd0, 0x0f}
	// Format 2: the same, then kept claims {"a":1}.
	two := append(append([]byte{verdictFormatExtra}, one[1:]...), 7, '{', '"', 'a', '"', ':', '1', '}')
	// Format 3: format 1 then a thumbprint's 32 bytes; format 4 the same
	// then the kept claims.
	tp := make([]byte, thumbprintSize)
	three := append(append([]byte{verdictFormatBound}, one[1:]...), tp...)
	four := append(append([]byte{verdictFormatBoundExtra}, three[1:]...), two[len(one):]...)
	for name, b := range map[string][]byte{"format 1": one, "format 2": two, "format 3": three, "format 4": four} {
		if v, err := (Codec{}).Decode(b); err == nil {
			t.Errorf("%s decoded as %+v", name, v.Claims)
		}
	}
	for code, want := range cachedFailures {
		if want == nil {
			continue
		}
		v, err := Codec{}.Decode([]byte{verdictFormat, KindInvalid, byte(code)})
		if err != nil || v.Err != want {
			t.Errorf("failure code %d: %+v, %v; want %v", code, v, err, want)
		}
	}
}

// TestCodecRevocableLayout pins the format of valid verdicts byte by byte:
// replicas of every later release must read it.
func TestCodecRevocableLayout(t *testing.T) {
	v := Verdict{Claims: &token.Claims{Subject: "s", Expiry: time.UnixMilli(1000), IssuedAt: 300, SessionID: "x",
		Grant: &token.Grant{Issuer: "i", Audience: []string{"a"}}}}
	b, err := Codec{}.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{verdictFormatRevocable, KindValid, 1, 's', 1, 'i', 0, // subject, issuer, client
		1, 1, 'a', 0, // one audience, no scope
		0xd0, 0x0f, // expiry: 1000 ms, zigzag varint
		0xac, 0x02, // iat 300 s
		1, 'x', // sid
		0, // no thumbprint
		0, // no kept claims
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("encoded\n %v\nwant\n %v", b, want)
	}
	if _, err := (Codec{}).Encode(Verdict{Claims: &token.Claims{IssuedAt: -1, Grant: &token.Grant{}}}); err == nil {
		t.Error("a negative iat encoded")
	}
}

// TestDecodeFindsTheTableGrantInPlace: decoding a verdict whose grant the table holds reads
// the grant's fields where they lie and looks them up as they are, so it allocates the
// subject's string and the Claims only. A lookup key that differed from the table's by a byte
// would miss, build the grant again and allocate its strings and lists (the grant returned
// would still be the table's, which is why this counts allocations).
func TestDecodeFindsTheTableGrantInPlace(t *testing.T) {
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	for _, g := range []*token.Grant{
		{Issuer: "https://auth.example.com", ClientID: "c1", Audience: []string{"https://mcp.example.com/mcp", "x"},
			Scopes: []string{"mcp:tools", "mcp:write"}, Scope: "mcp:tools mcp:write"},
		{Issuer: "i"},
		{Issuer: "i", ClientID: "c1", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools", JKT: thumbprint},
	} {
		b, err := Codec{}.Encode(Verdict{Claims: &token.Claims{Subject: "alice", SessionID: "s1", IssuedAt: 1_800_000_000, Expiry: exp, Grant: g}})
		if err != nil {
			t.Fatal(err)
		}
		codec := Codec{Grants: NewGrants(8)}
		first, err := codec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			v, err := codec.Decode(b)
			if err != nil || v.Claims.Grant != first.Claims.Grant {
				t.Fatalf("decoded %+v (%v): not the table's grant", v, err)
			}
		})
		if allocs != 2 {
			t.Errorf("grant %+v: decoding with the grant in the table made %v allocations, want 2 (the subject and sid, the Claims)", g, allocs)
		}
	}
}

// TestDecodeNonMinimalLengths: an entry written by something else may spell a length with
// more varint bytes than it needs. Read in place, its bytes are not the grant's key; the grant
// is then built from the values and interned, and is the one a minimal entry gets.
func TestDecodeNonMinimalLengths(t *testing.T) {
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())
	g := &token.Grant{Issuer: "i", ClientID: "c1", Scopes: []string{"mcp:tools"}, Scope: "mcp:tools"}
	b, err := Codec{}.Encode(Verdict{Claims: &token.Claims{Subject: "alice", Expiry: exp, Grant: g}})
	if err != nil {
		t.Fatal(err)
	}
	// After format, kind and the subject ("alice", length 5), the issuer's length 1 is the
	// byte at 2+1+5; written instead as 0x81 0x00, the same 1 in two bytes.
	at := 2 + 1 + len("alice")
	if b[at] != 1 || b[at+1] != 'i' {
		t.Fatalf("unexpected layout % x", b)
	}
	long := append(append(append([]byte{}, b[:at]...), 0x81, 0x00), b[at+1:]...)
	codec := Codec{Grants: NewGrants(8)}
	want, err := codec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Decode(long)
	if err != nil {
		t.Fatalf("non-minimal length: %v", err)
	}
	if got.Claims.Grant != want.Claims.Grant || !reflect.DeepEqual(got, want) {
		t.Errorf("non-minimal length decoded as %+v, want %+v", got.Claims, want.Claims)
	}
}
