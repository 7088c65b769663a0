package oauthflow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/cache"

	"github.com/extauthz/extauthz/internal/testkit"
)

// semanticsTimeout is the per-call Redis timeout where a test checks what the store does, not
// how fast: a loaded machine running -race can miss the production 250ms.
const semanticsTimeout = 5 * time.Second

// eventually bounds how long a test waits for something that should happen soon (an entry's
// expiry, a lock's lapse). It is a guard against hanging, not an assertion about speed.
const eventually = 5 * time.Second

// clockStart is where the in-process store's clock (testkit.NewClockAt) starts in tests: a
// fixed instant, so that failures reproduce.
var clockStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is one backend under test: a store, and what a test needs to look behind it.
type harness struct {
	t      *testing.T
	key    Key
	s      *Store
	server *redistest.Server     // nil in process
	client redis.UniversalClient // nil in process
	clock  *testkit.Clock        // in process on the fake clock; nil otherwise
}

// store returns another store on the same backing state as h.s (the same Redis, or the same
// in-process memory) with key k: a second replica when k is h.key.
func (h *harness) store(k Key) *Store {
	h.t.Helper()
	if h.client != nil {
		s, err := NewStore(StoreOptions{Key: k, Redis: h.client, Timeout: semanticsTimeout})
		if err != nil {
			h.t.Fatal(err)
		}
		return s
	}
	other, err := NewStore(StoreOptions{Key: k})
	if err != nil {
		h.t.Fatal(err)
	}
	other.mem, other.b = h.s.mem, h.s.b
	return other
}

// raw returns the stored bytes at a storage key (a copy), or nil.
func (h *harness) raw(key string) []byte {
	h.t.Helper()
	if h.client != nil {
		v, err := h.client.Get(h.t.Context(), key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			h.t.Fatal(err)
		}
		return v
	}
	h.s.mem.mu.Lock()
	defer h.s.mem.mu.Unlock()
	if e, ok := h.s.mem.entries[key]; ok {
		return bytes.Clone(e.val)
	}
	return nil
}

// setRaw writes bytes at a storage key, keeping the entry's lifetime when it exists (a minute
// otherwise).
func (h *harness) setRaw(key string, v []byte) {
	h.t.Helper()
	if h.client != nil {
		ttl, err := h.client.PTTL(h.t.Context(), key).Result()
		if err != nil {
			h.t.Fatal(err)
		}
		if ttl <= 0 {
			ttl = time.Minute
		}
		if err := h.client.Set(h.t.Context(), key, v, ttl).Err(); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	m := h.s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; ok {
		e.val = bytes.Clone(v)
		return
	}
	m.entries[key] = &memEntry{key: key, val: bytes.Clone(v), exp: m.now().Add(time.Minute)}
}

// keys lists every storage key: all of this test's own Redis, or the in-process maps.
func (h *harness) keys() []string {
	h.t.Helper()
	var out []string
	if h.client != nil {
		iter := h.client.Scan(h.t.Context(), 0, "*", 100).Iterator()
		for iter.Next(h.t.Context()) {
			out = append(out, iter.Val())
		}
		if err := iter.Err(); err != nil {
			h.t.Fatal(err)
		}
		return out
	}
	m := h.s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.entries {
		out = append(out, k)
	}
	for k := range m.locks {
		out = append(out, k)
	}
	return out
}

// lockValue returns the raw value of a lock key ("" when absent).
func (h *harness) lockValue(key string) string {
	h.t.Helper()
	if h.client != nil {
		v, err := h.client.Get(h.t.Context(), key).Result()
		if errors.Is(err, redis.Nil) {
			return ""
		}
		if err != nil {
			h.t.Fatal(err)
		}
		return v
	}
	m := h.s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.locks[key].token
}

type backendKind int

const (
	inProcess backendKind = iota
	inRedis
)

// both runs f as parallel subtests "memory" and "redis", each with its own backend: the
// in-process store on a fake clock (or on the real one if realClock, as the lock tests need:
// renewal runs on real timers), and a new redis-server of the test's own.
func both(t *testing.T, realClock bool, f func(t *testing.T, h *harness)) {
	t.Helper()
	for _, kind := range []backendKind{inProcess, inRedis} {
		name := map[backendKind]string{inProcess: "memory", inRedis: "redis"}[kind]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, newHarness(t, kind, realClock))
		})
	}
}

func newHarness(t *testing.T, kind backendKind, realClock bool) *harness {
	t.Helper()
	h := &harness{t: t, key: testKey(t, 1)}
	o := StoreOptions{Key: h.key}
	switch kind {
	case inRedis:
		h.server = redistest.Start(t)
		c, err := cache.NewRedisClient(cache.RedisClientOptions{
			URL: "redis://" + h.server.Addr(), Timeout: semanticsTimeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		h.client = c
		o.Redis, o.Timeout = c, semanticsTimeout
	default:
		if !realClock {
			h.clock = testkit.NewClockAt(clockStart)
			o.Now = h.clock.Now
		}
	}
	s, err := NewStore(o)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	return h
}

// testKey is a fixed, distinct key per seed.
func testKey(t *testing.T, seed byte) Key {
	t.Helper()
	var k Key
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sampleState() *LoginState {
	return &LoginState{
		Resource:    "mcp",
		Issuer:      "https://issuer.example",
		Verifier:    "verifier-" + strings.Repeat("v", 40),
		Nonce:       "nonce-123",
		ReturnTo:    "/tools?x=1",
		RedirectURI: "https://gw.example/oauth/callback",
		Expires:     time.Date(2026, 3, 1, 12, 10, 0, 0, time.FixedZone("CET", 3600)),
	}
}

func sampleSession() *Session {
	return &Session{
		Resource:     "mcp",
		Issuer:       "https://issuer.example",
		Subject:      "user-42",
		AccessToken:  "ACCESS-TOKEN-" + strings.Repeat("a", 30),
		RefreshToken: "REFRESH-TOKEN-" + strings.Repeat("r", 30),
		IDToken:      "ID-TOKEN-" + strings.Repeat("i", 30),
		Expiry:       time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC),
		Created:      time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC),
	}
}

func equalState(a, b *LoginState) bool {
	return a.Resource == b.Resource && a.Issuer == b.Issuer && a.Verifier == b.Verifier &&
		a.Nonce == b.Nonce && a.ReturnTo == b.ReturnTo && a.RedirectURI == b.RedirectURI &&
		a.Expires.Equal(b.Expires)
}

func equalSession(a, b *Session) bool {
	return a.Resource == b.Resource && a.Issuer == b.Issuer && a.Subject == b.Subject &&
		a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken &&
		a.IDToken == b.IDToken && a.Expiry.Equal(b.Expiry) && a.Created.Equal(b.Created)
}

// ---- keys and ids ----

func TestParseKey(t *testing.T) {
	t.Parallel()
	var want Key
	for i := range want {
		want[i] = byte(200 - i)
	}
	raw := string(want[:])
	hx := hex.EncodeToString(want[:])
	accept := map[string]string{
		"hex":                 hx,
		"HEX":                 strings.ToUpper(hx),
		"hex with whitespace": "  " + hx + "\n",
		"base64 std":          base64.StdEncoding.EncodeToString(want[:]),
		"base64 std raw":      base64.RawStdEncoding.EncodeToString(want[:]),
		"base64 url":          base64.URLEncoding.EncodeToString(want[:]),
		"base64 url raw":      base64.RawURLEncoding.EncodeToString(want[:]) + "\r\n",
		"raw":                 raw,
	}
	for name, in := range accept {
		k, err := ParseKey(in)
		if err != nil || k != want {
			t.Errorf("ParseKey(%s) = %v, want the key", name, err)
		}
	}

	// Raw keys whose edge bytes look like whitespace are taken as they are.
	var ws Key
	copy(ws[:], "\n0123456789abcdef0123456789abcd ")
	if k, err := ParseKey(string(ws[:])); err != nil || k != ws {
		t.Errorf("ParseKey(raw with whitespace-like edges) = %v", err)
	}
	// A 32-character key in a file with a trailing newline is raw, even if it is valid base64.
	var ascii Key
	copy(ascii[:], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")
	if k, err := ParseKey(string(ascii[:]) + "\n"); err != nil || k != ascii {
		t.Errorf("ParseKey(32 ASCII characters + newline) = %v", err)
	}

	refuse := map[string]string{
		"empty":           "",
		"whitespace":      " \n ",
		"raw 31":          raw[:31],
		"raw 33":          raw + "x",
		"hex 62":          hx[:62],
		"hex 66":          hx + "ab",
		"hex not hex":     strings.Repeat("zz", 32),
		"base64 of 31":    base64.StdEncoding.EncodeToString(want[:31]),
		"base64 of 33":    base64.RawURLEncoding.EncodeToString(append(want[:], 1)),
		"base64 of 48":    base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 48)),
		"zeros hex":       strings.Repeat("0", 64),
		"zeros base64":    base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"garbage":         "not a key at all!",
		"base64 bad char": strings.Repeat("*", 43),
	}
	for name, in := range refuse {
		k, err := ParseKey(in)
		if err == nil {
			t.Errorf("ParseKey(%s) accepted", name)
			continue
		}
		if k != (Key{}) {
			t.Errorf("ParseKey(%s) returned a key with its error", name)
		}
		if len(in) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(in)[:8]) {
			t.Errorf("ParseKey(%s) error quotes the input: %v", name, err)
		}
	}
}

// A Key never prints its bytes, whatever the verb, alone or inside StoreOptions.
func TestKeyRedacted(t *testing.T) {
	t.Parallel()
	k := testKey(t, 9)
	out := fmt.Sprintf("%v %s %x %X %d %#v %+v %q", k, k, k, k, k, k, StoreOptions{Key: k}, k)
	for _, leak := range []string{hex.EncodeToString(k[:])[:8], fmt.Sprint(k[0]) + " " + fmt.Sprint(k[1])} {
		if strings.Contains(out, leak) {
			t.Fatalf("formatted key shows its bytes: %s", out)
		}
	}
	if !strings.Contains(out, "redacted") {
		t.Fatalf("formatted key: %s", out)
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for range 10000 {
		id := newID(t)
		if len(id) != 43 {
			t.Fatalf("NewID length %d, want 43", len(id))
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(id)
		if err != nil || len(b) != 32 {
			t.Fatalf("NewID is not base64url of 32 bytes: %v, %d", err, len(b))
		}
		if seen[id] {
			t.Fatal("NewID repeated itself")
		}
		seen[id] = true
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	k := testKey(t, 1)
	for name, o := range map[string]StoreOptions{
		"zero key":         {},
		"negative timeout": {Key: k, Timeout: -1},
		"negative max":     {Key: k, MaxEntries: -1},
	} {
		if _, err := NewStore(o); err == nil {
			t.Errorf("NewStore(%s) accepted", name)
		}
	}
	s, err := NewStore(StoreOptions{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if s.mem == nil || s.mem.max != DefaultMaxEntries {
		t.Fatalf("in-process store without MaxEntries: %+v", s.mem)
	}
}

// ---- states and sessions, on both backends ----

// A sealed state opens for its own state, on any replica with the key, until it expires; and
// sealing stores nothing.
func TestSealState(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		state := newID(t)
		want := sampleState()
		sealed, err := h.s.SealState(state, want)
		if err != nil {
			t.Fatal(err)
		}
		if keys := h.keys(); len(keys) != 0 {
			t.Fatalf("SealState stored %v", keys)
		}
		if strings.Trim(sealed, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("sealed state %q is not unpadded base64url (a cookie value)", sealed)
		}
		before := want.Expires.Add(-time.Second)
		for name, s := range map[string]*Store{"same store": h.s, "another replica": h.store(h.key)} {
			got, err := s.OpenState(state, sealed, before)
			if err != nil || !equalState(got, want) {
				t.Fatalf("%s: OpenState = %+v, %v; want %+v", name, got, err, want)
			}
		}
		// Opening consumes nothing: single use is the caller's marker.
		if _, err := h.s.OpenState(state, sealed, before); err != nil {
			t.Fatalf("OpenState again: %v", err)
		}
		// Each seal is new (a random nonce), and both open.
		again, err := h.s.SealState(state, want)
		if err != nil || again == sealed {
			t.Fatalf("a second seal of the same state: %v (identical: %v)", err, again == sealed)
		}

		// Expiry: not after Expires, with its second's resolution.
		if _, err := h.s.OpenState(state, sealed, want.Expires); !errors.Is(err, ErrStateExpired) {
			t.Fatalf("OpenState at Expires = %v, want ErrStateExpired", err)
		}
		precise := sampleState()
		precise.Expires = precise.Expires.Add(999 * time.Millisecond)
		sealedPrecise, err := h.s.SealState(state, precise)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.OpenState(state, sealedPrecise, want.Expires.Add(time.Millisecond)); !errors.Is(err, ErrStateExpired) {
			t.Fatalf("OpenState within the second after a rounded-down Expires = %v, want ErrStateExpired", err)
		}

		// Empty optional fields survive.
		minimal := &LoginState{Verifier: "v", Expires: want.Expires}
		sm, err := h.s.SealState(state, minimal)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.s.OpenState(state, sm, before); err != nil || !equalState(got, minimal) {
			t.Fatalf("OpenState(minimal) = %+v, %v", got, err)
		}
	})
}

// A return path of characters JSON could escape costs one byte each in the sealed state:
// the cookie of the longest one stays small.
func TestSealStateSize(t *testing.T) {
	t.Parallel()
	h := newHarness(t, inProcess, false)
	state := newID(t)
	st := sampleState()
	st.Verifier, st.Nonce = newID(t), newID(t)
	for _, c := range []string{"a", "<", ">", "&", "'"} {
		st.ReturnTo = "/" + strings.Repeat(c, 1023)
		sealed, err := h.s.SealState(state, st)
		if err != nil {
			t.Fatal(err)
		}
		pt := len(mustJSONNoEscape(t, st))
		if want := base64.RawURLEncoding.EncodedLen(12 + pt + 16); len(sealed) != want || pt > 1024+300 {
			t.Errorf("rd of %q: sealed %d bytes from %d of plaintext, want %d (nonce, plaintext of at most 1324, tag)", c, len(sealed), pt, want)
		}
		if got, err := h.s.OpenState(state, sealed, st.Expires.Add(-time.Minute)); err != nil || got.ReturnTo != st.ReturnTo {
			t.Errorf("rd of %q: OpenState = %v", c, err)
		}
	}
}

// mustJSONNoEscape is a state's plaintext as SealState writes it.
func mustJSONNoEscape(t *testing.T, st *LoginState) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(stateRecord{
		Resource: st.Resource, Issuer: st.Issuer, Verifier: st.Verifier, Nonce: st.Nonce,
		ReturnTo: st.ReturnTo, RedirectURI: st.RedirectURI, Expires: st.Expires.Unix(),
	}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Of concurrent MarkStateUsed calls for one state, on two replicas, exactly one is first; and
// StateUsed sees the marker everywhere.
func TestMarkStateUsedConcurrent(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		ctx := t.Context()
		replicas := []*Store{h.s, h.store(h.key)}
		for round := range 5 {
			state := newID(t)
			if used, err := h.s.StateUsed(ctx, state); used || err != nil {
				t.Fatalf("round %d: StateUsed before marking = %v, %v", round, used, err)
			}
			var (
				wg    sync.WaitGroup
				won   atomic.Int32
				start = make(chan struct{})
				errs  = make(chan error, 50)
			)
			for i := range 50 {
				wg.Go(func() {
					<-start
					first, err := replicas[i%2].MarkStateUsed(ctx, state, time.Minute)
					if err != nil {
						errs <- err
					}
					if first {
						won.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("round %d: MarkStateUsed: %v", round, err)
			}
			if n := won.Load(); n != 1 {
				t.Fatalf("round %d: %d of 50 concurrent MarkStateUsed calls were first, want exactly 1", round, n)
			}
			for i, r := range replicas {
				if used, err := r.StateUsed(ctx, state); !used || err != nil {
					t.Fatalf("round %d: StateUsed on replica %d = %v, %v; want true", round, i, used, err)
				}
			}
		}
	})
}

func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		ctx := t.Context()
		id := newID(t)
		want := sampleSession()
		if err := h.s.Put(ctx, id, want, time.Hour); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // Get does not consume
			got, ok, err := h.s.Get(ctx, id)
			if err != nil || !ok || !equalSession(got, want) {
				t.Fatalf("Get #%d = %+v, %v, %v; want %+v", i, got, ok, err, want)
			}
		}
		// Each Get returns its own value.
		a, _, _ := h.s.Get(ctx, id)
		a.AccessToken = "changed"
		if b, _, _ := h.s.Get(ctx, id); b.AccessToken != want.AccessToken {
			t.Fatal("Get returned a shared value")
		}
		// Another replica sees it.
		if got, ok, err := h.store(h.key).Get(ctx, id); err != nil || !ok || !equalSession(got, want) {
			t.Fatalf("Get on another replica = %+v, %v, %v", got, ok, err)
		}

		// Put replaces (a refresh).
		refreshed := sampleSession()
		refreshed.AccessToken, refreshed.RefreshToken, refreshed.IDToken = "NEW-ACCESS", "", ""
		refreshed.Expiry = refreshed.Expiry.Add(time.Hour)
		if err := h.s.Put(ctx, id, refreshed, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := h.s.Get(ctx, id); err != nil || !ok || !equalSession(got, refreshed) {
			t.Fatalf("Get after Put = %+v, %v, %v; want %+v", got, ok, err, refreshed)
		}

		// Sessions and markers are separate namespaces: the same string names both.
		if first, err := h.s.MarkStateUsed(ctx, id, time.Minute); !first || err != nil {
			t.Fatalf("MarkStateUsed = %v, %v", first, err)
		}
		if got, ok, err := h.s.Get(ctx, id); err != nil || !ok || !equalSession(got, refreshed) {
			t.Fatalf("Get after a MarkStateUsed of the same string = %+v, %v, %v", got, ok, err)
		}

		if err := h.s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := h.s.Get(ctx, id); got != nil || ok || err != nil {
			t.Fatalf("Get after Delete = %+v, %v, %v", got, ok, err)
		}
		if err := h.s.Delete(ctx, id); err != nil {
			t.Fatalf("Delete of an absent session: %v", err)
		}
		if _, ok, err := h.s.Get(ctx, newID(t)); ok || err != nil {
			t.Fatalf("Get(unknown) = %v, %v", ok, err)
		}
		if used, err := h.s.StateUsed(ctx, id); !used || err != nil {
			t.Fatalf("the marker of the same string after Delete = %v, %v; want it untouched", used, err)
		}
	})
}

// Bad arguments are refused before any storage call, and errors name no id.
func TestArguments(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		ctx := t.Context()
		id := newID(t)
		short := "short-id-secret"
		errs := map[string]error{
			"Put ttl 0":           h.s.Put(ctx, id, sampleSession(), 0),
			"Put ttl -1":          h.s.Put(ctx, id, sampleSession(), -time.Second),
			"Put nil":             h.s.Put(ctx, id, nil, time.Minute),
			"Put short id":        h.s.Put(ctx, short, sampleSession(), time.Minute),
			"Put empty id":        h.s.Put(ctx, "", sampleSession(), time.Minute),
			"SealState nil":       sealErr(h.s.SealState(id, nil)),
			"SealState short":     sealErr(h.s.SealState(short, sampleState())),
			"SealState no expiry": sealErr(h.s.SealState(id, &LoginState{Verifier: "v"})),
			"Mark ttl 0":          markErr(h.s.MarkStateUsed(ctx, id, 0)),
			"Mark short":          markErr(h.s.MarkStateUsed(ctx, short, time.Minute)),
			"Mark negative":       markErr(h.s.MarkStateUsed(ctx, id, -1)),
			"TryLock ttl 0":       lockErr(h.s.TryLock(ctx, id, 0)),
			"TryLock ttl 999µs":   lockErr(h.s.TryLock(ctx, id, time.Millisecond-time.Microsecond)),
			"Put cancelled ctx":   h.s.Put(cancelled(), id, sampleSession(), time.Minute),
			"Get cancelled ctx":   getErr(h.s.Get(cancelled(), id)),
			"TryLock cancelled":   lockErr(h.s.TryLock(cancelled(), id, time.Second)),
			"Mark cancelled":      markErr(h.s.MarkStateUsed(cancelled(), id, time.Minute)),
			"StateUsed cancelled": markErr(h.s.StateUsed(cancelled(), id)),
		}
		for name, err := range errs {
			if err == nil {
				t.Errorf("%s: accepted", name)
				continue
			}
			if strings.Contains(err.Error(), id) || strings.Contains(err.Error(), short) {
				t.Errorf("%s: error names the id: %v", name, err)
			}
		}
		if keys := h.keys(); len(keys) != 0 {
			t.Fatalf("refused calls stored %v", keys)
		}
		// Short ids read as absent without an error.
		if _, ok, err := h.s.Get(ctx, short); ok || err != nil {
			t.Fatalf("Get(short) = %v, %v", ok, err)
		}
		if used, err := h.s.StateUsed(ctx, ""); used || err != nil {
			t.Fatalf("StateUsed(\"\") = %v, %v", used, err)
		}
		if st, err := h.s.OpenState(short, "x", time.Time{}); st != nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("OpenState(short) = %v, %v; want ErrCorrupt", st, err)
		}
		if err := h.s.Delete(ctx, short); err != nil {
			t.Fatalf("Delete(short) = %v", err)
		}
	})
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func lockErr(release func(), ok bool, err error) error {
	if release != nil || ok {
		return errors.New("lock taken")
	}
	return err
}

func getErr(_ *Session, _ bool, err error) error { return err }
func sealErr(_ string, err error) error          { return err }
func markErr(_ bool, err error) error            { return err }

func TestExpiry(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		ctx := t.Context()
		id, state := newID(t), newID(t)
		const ttl = 200 * time.Millisecond
		if err := h.s.Put(ctx, id, sampleSession(), ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.MarkStateUsed(ctx, state, ttl); err != nil {
			t.Fatal(err)
		}
		usedKey := storageKey(usedPrefix, state)

		if h.client == nil {
			h.clock.Advance(ttl - time.Nanosecond)
			if _, ok, err := h.s.Get(ctx, id); !ok || err != nil {
				t.Fatalf("Get just before expiry = %v, %v", ok, err)
			}
			h.clock.Advance(time.Nanosecond)
			if _, ok, err := h.s.Get(ctx, id); ok || err != nil {
				t.Fatalf("Get at expiry = %v, %v; want absent", ok, err)
			}
			if used, err := h.s.StateUsed(ctx, state); used || err != nil {
				t.Fatalf("StateUsed at expiry = %v, %v; want false", used, err)
			}
			if len(h.keys()) != 0 {
				t.Fatalf("expired entries still held: %v", h.keys())
			}
			return
		}

		// Redis: the keys carry the ttl as PX, and are gone soon after it.
		for _, key := range []string{storageKey(sessionPrefix, id), usedKey} {
			pttl, err := h.client.PTTL(ctx, key).Result()
			if err != nil || pttl <= 0 || pttl > ttl {
				t.Fatalf("PTTL = %v, %v; want in (0, %v]", pttl, err, ttl)
			}
		}
		deadline := time.Now().Add(eventually)
		for {
			_, ok, err := h.s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("session with a %v ttl still there after %v", ttl, eventually)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for {
			used, err := h.s.StateUsed(ctx, state)
			if err != nil {
				t.Fatal(err)
			}
			if !used {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("marker with a %v ttl still there after %v", ttl, eventually)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Once expired, the state can be marked again (the caller has refused it as expired).
		if first, err := h.s.MarkStateUsed(ctx, state, ttl); !first || err != nil {
			t.Fatalf("MarkStateUsed after expiry = %v, %v", first, err)
		}
	})
}

// ---- encryption at rest ----

func TestTampering(t *testing.T) {
	t.Parallel()
	both(t, false, func(t *testing.T, h *harness) {
		ctx := t.Context()
		put := func() (string, string) {
			id := newID(t)
			if err := h.s.Put(ctx, id, sampleSession(), time.Hour); err != nil {
				t.Fatal(err)
			}
			return id, storageKey(sessionPrefix, id)
		}
		wantCorrupt := func(what string, got *Session, ok bool, err error) {
			t.Helper()
			if !errors.Is(err, ErrCorrupt) || ok || got != nil {
				t.Fatalf("%s: Get = %+v, %v, %v; want ErrCorrupt", what, got, ok, err)
			}
		}

		// A flipped bit anywhere (nonce, ciphertext, tag) is caught.
		_, key0 := put()
		n := len(h.raw(key0))
		if n != 12+16+len(mustJSON(t, sessionRecord(*sampleSession()))) {
			t.Fatalf("stored value is %d bytes, want nonce + ciphertext + tag", n)
		}
		for _, i := range []int{0, 11, 12, n / 2, n - 1} {
			id, key := put()
			v := h.raw(key)
			v[i] ^= 0x01
			h.setRaw(key, v)
			got, ok, err := h.s.Get(ctx, id)
			wantCorrupt(fmt.Sprintf("byte %d flipped", i), got, ok, err)
		}
		// A truncated or empty value too.
		for _, size := range []int{0, 5, 28} {
			id, key := put()
			h.setRaw(key, h.raw(key)[:size])
			got, ok, err := h.s.Get(ctx, id)
			wantCorrupt(fmt.Sprintf("truncated to %d bytes", size), got, ok, err)
		}

		// A store with another key cannot read it; one with the same key can.
		id, key := put()
		other := h.store(testKey(t, 2))
		got, ok, err := other.Get(ctx, id)
		wantCorrupt("another key", got, ok, err)
		if _, ok, err := h.store(h.key).Get(ctx, id); !ok || err != nil {
			t.Fatalf("same key, another store: %v, %v", ok, err)
		}

		// A value moved under another session's key does not open there (the key is the AAD),
		// nor does a state's value under a session key.
		victim, victimKey := put()
		h.setRaw(victimKey, h.raw(key))
		got, ok, err = h.s.Get(ctx, victim)
		wantCorrupt("value copied from another session", got, ok, err)
		if _, ok, err := h.s.Get(ctx, id); !ok || err != nil {
			t.Fatalf("the original after the copy: %v, %v", ok, err)
		}
		state := newID(t)
		sealed, err := h.s.SealState(state, sampleState())
		if err != nil {
			t.Fatal(err)
		}
		sealedBytes, err := base64.RawURLEncoding.DecodeString(sealed)
		if err != nil {
			t.Fatal(err)
		}
		victim2, victimKey2 := put()
		h.setRaw(victimKey2, sealedBytes)
		got, ok, err = h.s.Get(ctx, victim2)
		wantCorrupt("a sealed state's bytes under a session key", got, ok, err)
		// Nor the other way: a session's value is no sealed state, even for the same string.
		if st, err := h.s.OpenState(id, base64.RawURLEncoding.EncodeToString(h.raw(key)), time.Time{}); st != nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a session's value as a sealed state = %+v, %v; want ErrCorrupt", st, err)
		}
	})
}

// A sealed state that was changed, cut, sealed under another key or for another state, or is
// not base64url at all, is ErrCorrupt.
func TestSealedStateTampering(t *testing.T) {
	t.Parallel()
	h := newHarness(t, inProcess, false)
	state, otherState := newID(t), newID(t)
	st := sampleState()
	now := st.Expires.Add(-time.Minute)
	sealed, err := h.s.SealState(state, st)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherKey, err := h.store(testKey(t, 2)).SealState(state, st)
	if err != nil {
		t.Fatal(err)
	}
	forOther, err := h.s.SealState(otherState, st)
	if err != nil {
		t.Fatal(err)
	}
	n := len(raw)
	cases := map[string]struct{ state, sealed string }{
		"nonce byte flipped":       {state, flip(0)},
		"ciphertext byte flipped":  {state, flip(n / 2)},
		"tag byte flipped":         {state, flip(n - 1)},
		"truncated":                {state, sealed[:len(sealed)-4]},
		"empty":                    {state, ""},
		"nonce only":               {state, base64.RawURLEncoding.EncodeToString(raw[:12])},
		"padded":                   {state, base64.URLEncoding.EncodeToString(raw)},
		"standard base64":          {state, strings.NewReplacer("-", "+", "_", "/").Replace(sealed) + "+/"},
		"not base64":               {state, sealed[:20] + "." + sealed[21:]},
		"sealed under another key": {state, otherKey},
		"sealed for another state": {state, forOther},
		"opened for another state": {otherState, sealed},
		"too long":                 {state, sealed + strings.Repeat("A", MaxSealedState)},
	}
	for name, c := range cases {
		if got, err := h.s.OpenState(c.state, c.sealed, now); got != nil || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: OpenState = %+v, %v; want ErrCorrupt", name, got, err)
		}
	}
	// The original still opens.
	if _, err := h.s.OpenState(state, sealed, now); err != nil {
		t.Fatalf("the untouched sealed state: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Storage keys are hashes: no id, state or lock name is in any key, and no token or verifier
// is in any value.
func TestStoredFormRevealsNothing(t *testing.T) {
	t.Parallel()
	both(t, true, func(t *testing.T, h *harness) {
		ctx := t.Context()
		id, state, lockName := newID(t), newID(t), "lock-"+newID(t)
		sess, st := sampleSession(), sampleState()
		if err := h.s.Put(ctx, id, sess, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.MarkStateUsed(ctx, state, time.Hour); err != nil {
			t.Fatal(err)
		}
		sealed, err := h.s.SealState(state, st)
		if err != nil {
			t.Fatal(err)
		}
		release, ok, err := h.s.TryLock(ctx, lockName, time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		defer release()

		keys := h.keys()
		want := map[string]bool{
			storageKey(sessionPrefix, id):    true,
			storageKey(usedPrefix, state):    true,
			storageKey(lockPrefix, lockName): true,
		}
		if len(keys) != len(want) {
			t.Fatalf("keys %v, want %d", keys, len(want))
		}
		shape := regexp.MustCompile(`^extauthz:v1:(used|session|lock):[0-9a-f]{64}$`)
		for _, k := range keys {
			if !want[k] || !shape.MatchString(k) {
				t.Errorf("unexpected key %q", k)
			}
			for _, secret := range []string{id, state, lockName, id[:16], state[:16]} {
				if strings.Contains(k, secret) {
					t.Errorf("key %q contains an id, state or lock name", k)
				}
			}
		}
		sum := sha256.Sum256([]byte(id))
		if !want["extauthz:v1:session:"+hex.EncodeToString(sum[:])] {
			t.Fatal("session key is not the hex SHA-256 of the id")
		}
		sealedBytes, _ := base64.RawURLEncoding.DecodeString(sealed)
		for what, v := range map[string][]byte{
			"the session's value": h.raw(storageKey(sessionPrefix, id)),
			"the marker's value":  h.raw(storageKey(usedPrefix, state)),
			"the sealed state":    []byte(sealed),
			"the sealed bytes":    sealedBytes,
		} {
			for _, secret := range []string{sess.AccessToken, sess.RefreshToken, sess.IDToken, sess.Subject,
				st.Verifier, st.Nonce, st.ReturnTo, "user-42", "issuer.example", id, state} {
				if bytes.Contains(v, []byte(secret)) {
					t.Errorf("%s contains %q in the clear", what, secret)
				}
			}
		}
	})
}

// ---- locks ----

func TestTryLockTwoReplicas(t *testing.T) {
	t.Parallel()
	both(t, true, func(t *testing.T, h *harness) {
		ctx := t.Context()
		a, b := h.s, h.store(h.key)
		name := newID(t)
		relA, ok, err := a.TryLock(ctx, name, 10*time.Second)
		if err != nil || !ok || relA == nil {
			t.Fatalf("first TryLock = %v, %v", ok, err)
		}
		if rel, ok, err := b.TryLock(ctx, name, 10*time.Second); ok || rel != nil || err != nil {
			t.Fatalf("TryLock by the other replica while held = %v, %v; want refused", ok, err)
		}
		if _, ok, _ := a.TryLock(ctx, name, 10*time.Second); ok {
			t.Fatal("the holder took its own lock twice: a lock is not reentrant")
		}
		// Another name is another lock.
		relOther, ok, err := b.TryLock(ctx, newID(t), 10*time.Second)
		if err != nil || !ok {
			t.Fatalf("TryLock of another name = %v, %v", ok, err)
		}
		relOther()

		relA()
		relA() // harmless
		relB, ok, err := b.TryLock(ctx, name, 10*time.Second)
		if err != nil || !ok {
			t.Fatalf("TryLock after release = %v, %v", ok, err)
		}
		if _, ok, _ := a.TryLock(ctx, name, 10*time.Second); ok {
			t.Fatal("lock taken while the other replica holds it")
		}
		relA() // an old release does not free the new holder's lock
		if _, ok, _ := a.TryLock(ctx, name, 10*time.Second); ok {
			t.Fatal("a stale release freed another holder's lock")
		}
		relB()
		if h.lockValue(storageKey(lockPrefix, name)) != "" {
			t.Fatal("released lock still stored")
		}
	})
}

// A lock held for three times its ttl stays held while renewed.
func TestTryLockRenewed(t *testing.T) {
	t.Parallel()
	both(t, true, func(t *testing.T, h *harness) {
		ctx := t.Context()
		a, b := h.s, h.store(h.key)
		name := newID(t)
		const ttl = 600 * time.Millisecond
		rel, ok, err := a.TryLock(ctx, name, ttl)
		if err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		end := time.Now().Add(3 * ttl)
		tries := 0
		for time.Now().Before(end) {
			if relB, ok, err := b.TryLock(ctx, name, ttl); ok || err != nil {
				if relB != nil {
					relB()
				}
				t.Fatalf("other replica took a renewed lock after %d tries (%v)", tries, err)
			}
			tries++
			time.Sleep(25 * time.Millisecond)
		}
		rel()
		relB, ok, err := b.TryLock(ctx, name, ttl)
		if err != nil || !ok {
			t.Fatalf("TryLock after release = %v, %v", ok, err)
		}
		relB()
	})
}

// A holder that stops renewing (its context ends, release never called) loses the lock within
// its ttl, and its late release does not free the next holder's lock.
func TestTryLockLapses(t *testing.T) {
	t.Parallel()
	both(t, true, func(t *testing.T, h *harness) {
		a, b := h.s, h.store(h.key)
		name := newID(t)
		const ttl = time.Second
		ctx, cancel := context.WithCancel(t.Context())
		relA, ok, err := a.TryLock(ctx, name, ttl)
		if err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		cancel() // renewal stops; relA is not called
		if _, ok, _ := b.TryLock(t.Context(), name, ttl); ok {
			t.Fatal("lock free at once when renewal stopped; want it held until its ttl ends")
		}
		deadline := time.Now().Add(eventually)
		var relB func()
		for {
			rel, ok, err := b.TryLock(t.Context(), name, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				relB = rel
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lock of a holder that stopped renewing still held after %v (ttl %v)", eventually, ttl)
			}
			time.Sleep(20 * time.Millisecond)
		}
		relA() // late: must not delete b's lock
		if _, ok, _ := a.TryLock(t.Context(), name, ttl); ok {
			t.Fatal("the stale holder's release freed the new holder's lock")
		}
		relB()
	})
}

func TestTryLockConcurrent(t *testing.T) {
	t.Parallel()
	both(t, true, func(t *testing.T, h *harness) {
		ctx := t.Context()
		replicas := []*Store{h.s, h.store(h.key)}
		name := newID(t)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			releases []func()
			start    = make(chan struct{})
		)
		for i := range 40 {
			wg.Go(func() {
				<-start
				rel, ok, err := replicas[i%2].TryLock(ctx, name, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					releases = append(releases, rel)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(releases) != 1 {
			t.Fatalf("%d of 40 concurrent TryLock calls took the lock, want exactly 1", len(releases))
		}
		releases[0]()
	})
}

// ---- Redis only ----

// Every Redis call is bounded by StoreOptions.Timeout: a Redis that stops answering is an error
// soon, not a hang until the client's own (here 5s) timeout.
func TestRedisTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, inRedis, true)
	s, err := NewStore(StoreOptions{Key: h.key, Redis: h.client, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	id := newID(t)
	if err := s.Put(ctx, id, sampleSession(), time.Minute); err != nil {
		t.Fatal(err)
	}
	h.server.Freeze()
	defer h.server.Thaw()
	calls := map[string]func() error{
		"Get":       func() error { return getErr(s.Get(ctx, id)) },
		"Put":       func() error { return s.Put(ctx, id, sampleSession(), time.Minute) },
		"StateUsed": func() error { return markErr(s.StateUsed(ctx, id)) },
		"Mark":      func() error { return markErr(s.MarkStateUsed(ctx, id, time.Minute)) },
		"Delete":    func() error { return s.Delete(ctx, id) },
		"TryLock":   func() error { return lockErr(s.TryLock(ctx, id, time.Second)) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if err == nil {
			t.Errorf("%s with Redis frozen: no error", name)
			continue
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v with a 100ms timeout", name, d)
		}
		if strings.Contains(err.Error(), id) {
			t.Errorf("%s error names the id: %v", name, err)
		}
	}
}

// The store works on a Redis Cluster: every command names one key.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	c, err := cache.NewRedisClient(cache.RedisClientOptions{ClusterAddrs: cl.Addrs(), Timeout: semanticsTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := NewStore(StoreOptions{Key: testKey(t, 1), Redis: c, Timeout: semanticsTimeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for range 10 { // keys spread over the nodes
		id, state := newID(t), newID(t)
		if err := s.Put(ctx, id, sampleSession(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Get(ctx, id); err != nil || !ok || !equalSession(got, sampleSession()) {
			t.Fatalf("Get = %+v, %v, %v", got, ok, err)
		}
		if first, err := s.MarkStateUsed(ctx, state, time.Minute); err != nil || !first {
			t.Fatalf("MarkStateUsed = %v, %v", first, err)
		}
		if used, err := s.StateUsed(ctx, state); err != nil || !used {
			t.Fatalf("StateUsed = %v, %v", used, err)
		}
		rel, ok, err := s.TryLock(ctx, id, time.Second)
		if err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		if _, ok, _ := s.TryLock(ctx, id, time.Second); ok {
			t.Fatal("lock taken twice")
		}
		rel()
		if rel2, ok, err := s.TryLock(ctx, id, time.Second); err != nil || !ok {
			t.Fatalf("TryLock after release = %v, %v", ok, err)
		} else {
			rel2()
		}
	}
}
