package devissuer

import (
	"testing"
	"time"
)

// FuzzVerifyOwn: whatever a token request carries as subject_token or
// actor_token, verifyOwn does not panic, and accepts only what this
// issuer signed: nothing but the seed's claims can come out of it.
func FuzzVerifyOwn(f *testing.F) {
	now := time.Unix(1_750_000_000, 0)
	iss, err := New("http://127.0.0.1:8080/dev", "ES256", func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	good, err := iss.Mint(Token{Subject: "dev-user", Extra: map[string]any{"act": map[string]any{"sub": "a"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := iss.verifyOwn(raw, now)
		if err != nil {
			return
		}
		if c.Sub != "dev-user" || c.Iss != iss.issuer || string(c.Act) != `{"sub":"a"}` {
			t.Fatalf("accepted claims %+v that the issuer never signed", c)
		}
	})
}
