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
	"time"

	"github.com/redis/go-redis/v9"
)

// Key prefixes; each is followed by the lower-case hex SHA-256 of the id, state or lock name.
// statePrefix names no stored entry: it is a sealed state's additional data.
const (
	keyPrefix     = "extauthz:v1:"
	statePrefix   = keyPrefix + "state:"
	sessionPrefix = keyPrefix + "session:"
	usedPrefix    = keyPrefix + "used:"
	lockPrefix    = keyPrefix + "lock:"
)

// MaxSealedState is the longest sealed state [Store.OpenState] reads; anything longer is
// ErrCorrupt without an attempt to decrypt it. Browsers keep at most 4096 bytes of a cookie's
// name and value together.
const MaxSealedState = 4096

// Defaults of [StoreOptions].
const (
	DefaultTimeout    = 250 * time.Millisecond
	DefaultMaxEntries = 100000
)

// ErrCorrupt is returned (possibly wrapped) for a stored state or session that cannot be
// decrypted: written under another key, changed, or moved to another entry's key.
var ErrCorrupt = errors.New("session: stored entry cannot be decrypted")

// ErrFull is returned by the in-process store for a new entry when it holds MaxEntries
// sessions and no marker that could make room.
var ErrFull = errors.New("session: in-process store is full")

// ErrStateExpired is returned by [Store.OpenState] for a sealed state that opens but whose
// sign-in has expired.
var ErrStateExpired = errors.New("session: login state expired")

// LoginState is what /oauth/login hands to its callback, sealed in a cookie.
type LoginState struct {
	Resource    string // protected resource name
	Issuer      string
	Verifier    string // PKCE code_verifier
	Nonce       string // "" unless openid was requested
	ReturnTo    string // validated relative path
	RedirectURI string
	// Expires ends the sign-in: OpenState refuses the state from then on. It is sealed with
	// a resolution of one second (rounded down).
	Expires time.Time
}

// Session is a signed-in browser's server-side state. Tokens never leave the server.
type Session struct {
	Resource     string
	Issuer       string
	Subject      string
	AccessToken  string
	RefreshToken string    // "" when none
	IDToken      string    // "" when none
	Expiry       time.Time // access token expiry
	Created      time.Time
}

// stateRecord is a sealed state's plaintext: short JSON names, the expiry in Unix seconds.
type stateRecord struct {
	Resource    string `json:"res,omitempty"`
	Issuer      string `json:"iss,omitempty"`
	Verifier    string `json:"cv,omitempty"`
	Nonce       string `json:"n,omitempty"`
	ReturnTo    string `json:"rt,omitempty"`
	RedirectURI string `json:"ru,omitempty"`
	Expires     int64  `json:"exp"`
}

// sessionRecord is the stored form of a session: the same fields (a conversion from the
// public type compiles only while they stay the same) under short JSON names.
type sessionRecord struct {
	Resource     string    `json:"res,omitempty"`
	Issuer       string    `json:"iss,omitempty"`
	Subject      string    `json:"sub,omitempty"`
	AccessToken  string    `json:"at,omitempty"`
	RefreshToken string    `json:"rt,omitempty"`
	IDToken      string    `json:"it,omitempty"`
	Expiry       time.Time `json:"exp,omitzero"`
	Created      time.Time `json:"c,omitzero"`
}

// StoreOptions configures [NewStore].
type StoreOptions struct {
	// Key encrypts every sealed state and stored session; required (a key of zeros is
	// refused).
	Key Key
	// Redis is the shared store; the caller keeps and closes it. nil: in process.
	Redis redis.UniversalClient
	// Timeout bounds each Redis call; default 250ms.
	Timeout time.Duration
	// MaxEntries bounds the in-process store, sessions and markers together; default 100000.
	// Not used with Redis.
	MaxEntries int
	// Now is the in-process store's clock, for the expiry of entries and locks. nil: time.Now.
	// Redis expires keys by its own clock. Lock renewal is timed by real timers either way.
	// Sealed states expire by the clock the caller passes to OpenState.
	Now func() time.Time
}

// Store seals login states, and keeps sessions, markers of completed sign-ins and refresh
// locks, in Redis or in process. It is safe for concurrent use.
type Store struct {
	seal *sealer
	b    backend
	mem  *memory // the in-process backend; nil with Redis
}

// backend is where encrypted values and locks live. Keys are complete (prefix and hash).
// Values passed in and returned are never modified in place.
type backend interface {
	set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// add stores a marker unless the key holds a live entry, atomically; true when it did.
	add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	get(ctx context.Context, key string) ([]byte, bool, error)
	del(ctx context.Context, key string) error
	lock(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	unlock(ctx context.Context, key, token string) error
}

// NewStore returns a store with o's settings.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Key.isZero() {
		return nil, errors.New("session: no key: StoreOptions.Key is all zeros")
	}
	if o.Timeout < 0 {
		return nil, errors.New("session: negative timeout")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxEntries < 0 {
		return nil, errors.New("session: negative MaxEntries")
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	sl, err := newSealer(o.Key)
	if err != nil {
		return nil, err
	}
	s := &Store{seal: sl}
	if o.Redis != nil {
		s.b = newRedisBackend(o.Redis, o.Timeout)
	} else {
		s.mem = newMemory(o.MaxEntries, o.Now)
		s.b = s.mem
	}
	return s, nil
}

// storageKey is prefix + the lower-case hex SHA-256 of id.
func storageKey(prefix, id string) string {
	sum := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(sum[:])
}

// checkPut validates what Put is given.
func checkPut(what, id string, isNil bool, ttl time.Duration) error {
	switch {
	case len(id) < MinIDLen:
		return fmt.Errorf("session: %s shorter than %d characters (use NewID)", what, MinIDLen)
	case isNil:
		return fmt.Errorf("session: nil %s value", what)
	case ttl <= 0:
		return fmt.Errorf("session: %s ttl %v is not positive", what, ttl)
	}
	return nil
}

// SealState encrypts st for the cookie of the sign-in called state: unpadded base64url of
// nonce || ciphertext || tag, which opens only for that state (see the package
// documentation, "Format"). It stores nothing.
func (s *Store) SealState(state string, st *LoginState) (string, error) {
	switch {
	case len(state) < MinIDLen:
		return "", fmt.Errorf("session: state shorter than %d characters (use NewID)", MinIDLen)
	case st == nil:
		return "", errors.New("session: nil state value")
	case st.Expires.IsZero():
		return "", errors.New("session: state without an expiry")
	}
	rec := stateRecord{
		Resource: st.Resource, Issuer: st.Issuer, Verifier: st.Verifier, Nonce: st.Nonce,
		ReturnTo: st.ReturnTo, RedirectURI: st.RedirectURI, Expires: st.Expires.Unix(),
	}
	// Without HTML escaping, which would write each of "<>&" as six bytes: a return path full
	// of them would not fit in a cookie.
	var pt bytes.Buffer
	enc := json.NewEncoder(&pt)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&rec); err != nil {
		return "", errors.New("session: encoding state") // json's error could quote a value
	}
	ct := s.seal.sealBytes(storageKey(statePrefix, state), bytes.TrimSuffix(pt.Bytes(), []byte("\n")))
	clear(pt.Bytes())
	return base64.RawURLEncoding.EncodeToString(ct), nil
}

// OpenState returns the state that SealState sealed for state, if it has not expired at now.
// A value that is not one (too long, not base64url, sealed under another key or for another
// state, changed) is ErrCorrupt; one whose Expires is not after now is ErrStateExpired. It
// reads nothing from the store: whether the sign-in was completed already is [Store.StateUsed].
func (s *Store) OpenState(state, sealed string, now time.Time) (*LoginState, error) {
	if len(state) < MinIDLen || len(sealed) > MaxSealedState {
		return nil, ErrCorrupt
	}
	ct, err := base64.RawURLEncoding.Strict().DecodeString(sealed)
	if err != nil {
		return nil, ErrCorrupt
	}
	var rec stateRecord
	if err := s.seal.openJSON(storageKey(statePrefix, state), ct, &rec); err != nil {
		return nil, err
	}
	st := &LoginState{
		Resource: rec.Resource, Issuer: rec.Issuer, Verifier: rec.Verifier, Nonce: rec.Nonce,
		ReturnTo: rec.ReturnTo, RedirectURI: rec.RedirectURI, Expires: time.Unix(rec.Expires, 0),
	}
	if !now.Before(st.Expires) {
		return nil, ErrStateExpired
	}
	return st, nil
}

// MarkStateUsed records, until ttl has passed, that the sign-in called state was completed,
// and reports whether this call recorded it: of any number of concurrent calls, on any number
// of replicas, exactly one gets true (Redis SET NX; in process, under the store's lock). The
// ttl should be what is left of the state's life: a later callback is refused as expired
// anyway. ttl <= 0 is an error.
func (s *Store) MarkStateUsed(ctx context.Context, state string, ttl time.Duration) (bool, error) {
	if err := checkPut("state", state, false, ttl); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.b.add(ctx, storageKey(usedPrefix, state), []byte("1"), ttl)
}

// StateUsed reports whether MarkStateUsed recorded state and the marker has not expired. A
// state shorter than MinIDLen is not used, without a call to the store.
func (s *Store) StateUsed(ctx context.Context, state string) (bool, error) {
	if len(state) < MinIDLen {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, ok, err := s.b.get(ctx, storageKey(usedPrefix, state))
	return ok, err
}

// Put stores sess under id for ttl, replacing any session there. ttl <= 0 is an error.
func (s *Store) Put(ctx context.Context, id string, sess *Session, ttl time.Duration) error {
	if err := checkPut("session", id, sess == nil, ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := storageKey(sessionPrefix, id)
	rec := sessionRecord(*sess)
	val, err := s.seal.sealJSON(key, &rec)
	if err != nil {
		return err
	}
	return s.b.set(ctx, key, val, ttl)
}

// Get returns the session stored under id. An absent or expired one is (nil, false, nil); one
// that cannot be decrypted (another key, tampered with, or moved from another id) returns
// ErrCorrupt, and the caller ends the session. Each call returns a new Session.
func (s *Store) Get(ctx context.Context, id string) (*Session, bool, error) {
	if len(id) < MinIDLen {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	key := storageKey(sessionPrefix, id)
	val, ok, err := s.b.get(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	var rec sessionRecord
	if err := s.seal.openJSON(key, val, &rec); err != nil {
		return nil, false, err
	}
	sess := Session(rec)
	return &sess, true, nil
}

// Delete removes the session stored under id; an absent one is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if len(id) < MinIDLen {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.b.del(ctx, storageKey(sessionPrefix, id))
}
