package b64seg_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/b64seg"
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestEncoderOutput: whatever an encoder writes is canonical and decodes
// back, by each of the ways to decode; every other spelling of the same
// bytes is refused by each.
func TestEncoderOutput(t *testing.T) {
	for n := range 70 {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		e := base64.RawURLEncoding.EncodeToString(b)
		if !b64seg.Canonical(e) || b64seg.DecodedLen(len(e)) != n {
			t.Fatalf("%d bytes: %q not canonical", n, e)
		}
		if got, ok := b64seg.Decode(e); !ok || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: Decode(%q) = %x, %v", n, e, got, ok)
		}
		if got, ok := b64seg.Append([]byte("prefix"), e); !ok || !bytes.Equal(got, append([]byte("prefix"), b...)) {
			t.Fatalf("%d bytes: Append(%q) = %x, %v", n, e, got, ok)
		}
		if got, ok := b64seg.Append(nil, []byte(e)); !ok || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: Append([]byte(%q)) = %x, %v", n, e, got, ok)
		}
		dst := make([]byte, n)
		if !b64seg.DecodeInto(dst, e) || !bytes.Equal(dst, b) {
			t.Fatalf("%d bytes: DecodeInto(%q) = %x", n, e, dst)
		}
		if b64seg.DecodeInto(make([]byte, n+1), e) || (n > 0 && b64seg.DecodeInto(make([]byte, n-1), e)) {
			t.Errorf("%d bytes: decoded into a buffer of another length", n)
		}
		for _, bad := range respellings(b, e) {
			if b64seg.Canonical(bad) {
				t.Errorf("%d bytes: %q canonical", n, bad)
			}
			if got, ok := b64seg.Decode(bad); ok {
				t.Errorf("%d bytes: Decode(%q) = %x", n, bad, got)
			}
			if got, ok := b64seg.Append([]byte("p"), bad); ok || string(got) != "p" {
				t.Errorf("%d bytes: Append(%q) = %q, %v", n, bad, got, ok)
			}
			if b64seg.DecodeInto(make([]byte, n), bad) {
				t.Errorf("%d bytes: DecodeInto accepted %q", n, bad)
			}
		}
	}
}

// respellings are other texts that lenient decoders read as b, and
// texts that are no encoding at all.
func respellings(b []byte, e string) []string {
	out := []string{
		base64.URLEncoding.EncodeToString(b) + "=", // padded (and over-padded)
		e + "\n", " " + e, e + ".",
	}
	if len(e)%4 == 0 { // one character more carries no whole byte
		out = append(out, e+"A")
	}
	if std := base64.RawStdEncoding.EncodeToString(b); std != e {
		out = append(out, std)
	}
	if pad := base64.URLEncoding.EncodeToString(b); pad != e {
		out = append(out, pad)
	}
	if len(e) > 0 {
		out = append(out, e[:len(e)-1]+"+", e[:len(e)/2]+"\r\n"+e[len(e)/2:])
		if len(b)%3 != 0 { // the last character holds padding bits: set one
			last := strings.IndexByte(alphabet, e[len(e)-1])
			out = append(out, e[:len(e)-1]+string(alphabet[last|1]))
		}
	}
	return out
}

func TestDecodedLen(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: -1, 2: 1, 3: 2, 4: 3, 5: -1, 6: 4, 43: 32, 86: 64} {
		if got := b64seg.DecodedLen(n); got != want {
			t.Errorf("DecodedLen(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestDecodeIntoDoesNotAllocate: pkg/token decodes an ECDSA signature on
// every Check.
func TestDecodeIntoDoesNotAllocate(t *testing.T) {
	e := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	var dst [64]byte
	if n := testing.AllocsPerRun(100, func() { b64seg.DecodeInto(dst[:], e) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzDecode compares with encoding/base64: a text is canonical exactly
// when the strict unpadded URL decoder reads it and its encoder writes it
// back the same, and then every way to decode it gives those bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "A", "AA", "AB", "AAA", "AAB", "AAAA", "-_-_", "+/+/", "AA==", "AA\nAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		std, err := base64.RawURLEncoding.Strict().DecodeString(s)
		want := err == nil && base64.RawURLEncoding.EncodeToString(std) == s
		if got := b64seg.Canonical(s); got != want {
			t.Fatalf("Canonical(%q) = %v; encoding/base64 decodes %x, %v", s, got, std, err)
		}
		dec, ok := b64seg.Decode(s)
		app, ok2 := b64seg.Append([]byte{1}, s)
		into := make([]byte, max(0, b64seg.DecodedLen(len(s))))
		ok3 := b64seg.DecodeInto(into, s)
		if ok != want || ok2 != want || ok3 != want {
			t.Fatalf("%q: Decode %v, Append %v, DecodeInto %v; canonical %v", s, ok, ok2, ok3, want)
		}
		if want && (!bytes.Equal(dec, std) || !bytes.Equal(app[1:], std) || !bytes.Equal(into, std)) {
			t.Fatalf("%q: Decode %x, Append %x, DecodeInto %x; want %x", s, dec, app[1:], into, std)
		}
	})
}
