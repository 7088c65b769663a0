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
	}
	for _, e := range []error{token.ErrMalformed, token.ErrCritical, token.ErrMissingExpiry, token.ErrAlgorithm,
		token.ErrUnknownIssuer, token.ErrSignature, token.ErrExpired, ErrWrongAudience, ErrRevoked, token.ErrInactive, token.ErrNotAccessToken} {
		cases = append(cases, Verdict{Err: e})
	}
	for _, v := range cases {
		b, err := Codec{}.Encode(v)
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		got, err := Codec{}.Decode(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", v, err)
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
		// Without kept claims the layout stays format 1, which replicas
		// of the previous release read.
		if want := byte(verdictFormat); v.Claims.Extra != nil {
			want = verdictFormatExtra
			if b[0] != want {
				t.Errorf("format %d, want %d", b[0], want)
			}
		} else if b[0] != want {
			t.Errorf("format %d, want %d", b[0], want)
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

// FuzzVerdictDecode: shared-cache contents are never trusted to be well
// formed; decoding must not panic and must round-trip what it accepts.
func FuzzVerdictDecode(f *testing.F) {
	v := Verdict{Claims: &token.Claims{Subject: "s", Expiry: time.UnixMilli(1e12), Grant: &token.Grant{Issuer: "i", Audience: []string{"a"}, Scopes: []string{"x"}, Scope: "x"}}}
	b, _ := Codec{}.Encode(v)
	f.Add(b)
	f.Add([]byte{1, 1, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Codec{}.Decode(b)
		if err != nil {
			return
		}
		again, err := Codec{}.Encode(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		v2, err := Codec{}.Decode(again)
		if err != nil || (v.Claims == nil) != (v2.Claims == nil) || v.Err != v2.Err {
			t.Fatalf("round trip changed %+v into %+v (%v)", v, v2, err)
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
