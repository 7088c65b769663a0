package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestTokenKey(t *testing.T) {
	tests := []struct {
		name, namespace, token, want string
	}{
		{
			name: "FIPS 180-2 abc", namespace: "mcp", token: "abc",
			want: "extauthz:v1:mcp:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		},
		{
			name: "empty token", namespace: "docs", token: "",
			want: "extauthz:v1:docs:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		},
		{
			// Longer than the copy buffer many times over, with a remainder.
			name: "FIPS 180-2 million a", namespace: "mcp", token: strings.Repeat("a", 1_000_000),
			want: "extauthz:v1:mcp:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TokenKey(tt.namespace, tt.token); got != tt.want {
				t.Fatalf("TokenKey(%q, token) = %q, want %q", tt.namespace, got, tt.want)
			}
		})
	}
}

// Every length around the copy buffer's boundaries hashes as sha256.Sum256 does.
func TestTokenKeyChunkBoundaries(t *testing.T) {
	for _, n := range []int{1, hashChunk - 1, hashChunk, hashChunk + 1, 2 * hashChunk, 3*hashChunk + 7} {
		token := strings.Repeat("x", n)
		sum := sha256.Sum256([]byte(token))
		want := "extauthz:v1:ns:" + hex.EncodeToString(sum[:])
		if got := TokenKey("ns", token); got != want {
			t.Errorf("len %d: TokenKey = %q, want %q", n, got, want)
		}
	}
}

func TestTokenKeyAllocatesOnce(t *testing.T) {
	token := strings.Repeat("t", 900) // JWT-sized: a []byte conversion of it would allocate
	allocs := testing.AllocsPerRun(100, func() { _ = TokenKey("mcp", token) })
	if allocs > 1 {
		t.Fatalf("TokenKey allocates %v times, want 1 (the key)", allocs)
	}
}

func BenchmarkTokenKey(b *testing.B) {
	token := strings.Repeat("t", 900) // about the size of a signed JWT access token
	b.ReportAllocs()
	for b.Loop() {
		_ = TokenKey("mcp", token)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k := KeyOf("mcp", "a.b.c")
	if k.String() != TokenKey("mcp", "a.b.c") {
		t.Fatalf("String %q differs from TokenKey", k.String())
	}
	back, ok := ParseKey(k.String())
	if !ok || back != k {
		t.Fatalf("ParseKey(%q) = %+v, %v", k.String(), back, ok)
	}
	hexHash := k.String()[len("extauthz:v1:mcp:"):]
	if h, err := KeyForHash("mcp", hexHash); err != nil || h != k {
		t.Fatalf("KeyForHash = %+v, %v", h, err)
	}
	for _, bad := range []string{"", "extauthz:v1:mcp", "extauthz:v2:mcp:" + hexHash, "extauthz:v1::" + hexHash, "extauthz:v1:mcp:" + hexHash[1:], "extauthz:v1:mcp:" + strings.ToUpper(hexHash)} {
		if _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	long := strings.Repeat("x", 900)
	if n := testing.AllocsPerRun(100, func() { _ = KeyOf("mcp", long) }); n != 0 {
		t.Errorf("KeyOf allocates %v times", n)
	}
}
