package upstream

import (
	"bytes"
	"testing"
)

// FuzzParseResponse: whatever a token endpoint answers, the parser does
// not panic, and what it accepts is a non-empty b64token with a positive
// lifetime or none.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"t","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":60}`,
		`{"access_token":"t","token_type":"N_A"}`,
		`{"access_token":"a\r\nb","token_type":"bearer","expires_in":"60"}`,
		`{"access_token":null}`, `[]`, `"x"`, ``, `{"expires_in":1e400}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, exchange bool) {
		p, err := parseResponse(body, exchange)
		if err != nil {
			return
		}
		if !isB64Token(p.token) || p.expiresIn < 0 {
			t.Fatalf("accepted %+v", p)
		}
	})
}

// FuzzSealedEntry: bytes read from Redis decode to an entry only if this
// key sealed them; anything else is an error, never a panic.
func FuzzSealedEntry(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	c, err := newSealer(key)
	if err != nil {
		f.Fatal(err)
	}
	e := &entry{token: "tok", expiry: 1 << 60, until: 5}
	e.hash[0] = 1
	sealed, err := c.Encode(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{sealVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := c.Decode(b)
		if err != nil {
			return
		}
		// Only e was ever sealed under this key (each fuzzing process
		// seals its own copy, with its own nonce).
		if got.hash != e.hash || got.token != e.token || got.expiry != e.expiry || got.until != e.until {
			t.Fatalf("decoded an entry this key never sealed: %+v", got)
		}
	})
}

func TestSealedEntryRoundTrip(t *testing.T) {
	c, err := newSealer(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*entry{
		{token: "a.b.c", expiry: 1, subject: 2, until: 3, refreshAt: 4},
		{refusal: refusals["invalid_grant"], code: "invalid_grant", subject: -1, until: 1 << 62},
	} {
		e.hash[31] = 0xaa
		b, err := c.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := c.Encode(e)
		if bytes.Equal(b, b2) {
			t.Fatal("two seals of one entry are equal: the nonce is not random")
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.hash != e.hash || got.token != e.token || got.refusal != e.refusal || got.code != e.code ||
			got.expiry != e.expiry || got.subject != e.subject || got.until != e.until || got.refreshAt != e.refreshAt {
			t.Fatalf("round trip: %+v; want %+v", got, e)
		}
		// Any flipped bit is refused.
		for i := range b {
			bad := bytes.Clone(b)
			bad[i] ^= 1
			if _, err := c.Decode(bad); err == nil {
				t.Fatalf("a flipped bit at %d decoded", i)
			}
		}
	}
}
