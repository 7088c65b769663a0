package oauthflow

import (
	"errors"
	"testing"
	"time"
)

// FuzzOpenState: the login-state cookie is attacker input. Whatever it holds, OpenState does
// not panic, fails only with ErrCorrupt or ErrStateExpired, and opens nothing but what
// SealState sealed for that state under this key.
func FuzzOpenState(f *testing.F) {
	var k Key
	for i := range k {
		k[i] = byte(i*5 + 3)
	}
	s, err := NewStore(StoreOptions{Key: k})
	if err != nil {
		f.Fatal(err)
	}
	const state = "state-0123456789abcdefghijklmnopqrstuvwxyzAB"
	st := &LoginState{Resource: "mcp", Verifier: "v", ReturnTo: "/x", Expires: time.Unix(2_000_000_000, 0)}
	sealed, err := s.SealState(state, st)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_900_000_000, 0)
	f.Add(state, sealed)
	f.Add(state, sealed[:len(sealed)-1])
	f.Add(state, "")
	f.Add("short", sealed)
	f.Add(state+"x", sealed)
	f.Add(state, "eyJhbGciOiJub25lIn0")
	f.Fuzz(func(t *testing.T, gotState, gotSealed string) {
		got, err := s.OpenState(gotState, gotSealed, now)
		switch {
		case err == nil:
			if gotState != state || got == nil || got.Resource != "mcp" || got.ReturnTo != "/x" {
				t.Fatalf("OpenState(%q, %q) opened %+v", gotState, gotSealed, got)
			}
		case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrStateExpired):
			t.Fatalf("OpenState: unexpected error %v", err)
		case got != nil:
			t.Fatalf("OpenState returned %+v with %v", got, err)
		}
	})
}
