// Package session keeps the server-side state of the browser login flow (the OAuth
// authorization-code flow with PKCE that the gateway runs for browser users): one-time login
// states, between /oauth/login and /oauth/callback; sessions, which hold a signed-in browser's
// token set, found by the random id in its cookie; and a fleet-wide lock, so that one replica
// at a time refreshes a session's tokens.
//
// # Where
//
// A [Store] keeps everything in Redis when it is given a client (standalone, Sentinel or
// Cluster: every command touches one key; Redis 6.2 or later, for GETDEL), shared by every
// replica; otherwise in process, for a single replica.
//
// Redis keys are
//
//	extauthz:v1:state:<hex SHA-256 of the state>
//	extauthz:v1:session:<hex SHA-256 of the session id>
//	extauthz:v1:lock:<hex SHA-256 of the lock name>
//
// so the raw id or state never appears in Redis: a leaked key list yields no usable cookie.
// The in-process store uses the same keys.
//
// # Format
//
// A state or session is stored as AES-256-GCM under the [Key], with a random 96-bit nonce and
// the entry's key string as additional data: the value is nonce || ciphertext || tag, where the
// plaintext is a compact JSON object (short field names, empty fields left out). A value that
// does not open (another key, a changed byte, or a value copied under another key, which the
// additional data catches) is reported as [ErrCorrupt]; the caller ends that session. The
// in-process store keeps the same encrypted bytes, so that tokens are not in memory in the
// clear between requests, and everything said here about tampering holds for both.
//
// A lock's value is its holder's random token, in the clear (it names no session).
//
// # Lifetimes
//
// Every state and session is written with a lifetime (ttl > 0): in Redis as the key's PX (the
// ttl rounded up to a millisecond), which alone decides expiry there; in process as an expiry
// time by [Options.Now]. Expired in-process entries are dropped when they are read, and by a
// sweep of the whole store that runs, at most once a minute, on whichever call comes first
// after the minute: no goroutine, so nothing to close.
//
// # Bound
//
// The in-process store holds at most [Options.MaxEntries] states and sessions together. When it
// is full, a new entry first reclaims expired ones (a sweep, at most once a second), then evicts
// the oldest login state, and only when no state is left is it refused with [ErrFull]. So a
// flood of unauthenticated /oauth/login requests can only displace other pending logins, never
// sign anybody out; filling the store with sessions takes that many real sign-ins. Overwriting
// an existing entry is always allowed. Locks are not counted: one exists only while its holder
// holds it.
//
// # Timeouts
//
// Every Redis call has its own deadline of [Options.Timeout] on top of the caller's context.
// The client must let contexts set socket deadlines (ContextTimeoutEnabled, as
// cache.NewRedisClient builds it), and its own read and write timeouts apply as well: the
// shorter wins.
//
// Errors never contain tokens, ids, states, lock names or key material.
package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key prefixes; each is followed by the lower-case hex SHA-256 of the id, state or lock name.
const (
	keyPrefix     = "extauthz:v1:"
	statePrefix   = keyPrefix + "state:"
	sessionPrefix = keyPrefix + "session:"
	lockPrefix    = keyPrefix + "lock:"
)

// Defaults of [Options].
const (
	DefaultTimeout    = 250 * time.Millisecond
	DefaultMaxEntries = 100000
)

// ErrCorrupt is returned (possibly wrapped) for a stored state or session that cannot be
// decrypted: written under another key, changed, or moved to another entry's key.
var ErrCorrupt = errors.New("session: stored entry cannot be decrypted")

// ErrFull is returned by the in-process store for a new entry when it holds MaxEntries
// sessions and no login state that could make room.
var ErrFull = errors.New("session: in-process store is full")

// LoginState is what /oauth/login remembers until the callback.
type LoginState struct {
	Resource    string // protected resource name
	Issuer      string
	Verifier    string // PKCE code_verifier
	Nonce       string // "" unless openid was requested
	ReturnTo    string // validated relative path
	RedirectURI string
	Created     time.Time
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

// stateRecord and sessionRecord are the stored forms: the same fields (a conversion from the
// public type compiles only while they stay the same) under short JSON names.
type stateRecord struct {
	Resource    string    `json:"res,omitempty"`
	Issuer      string    `json:"iss,omitempty"`
	Verifier    string    `json:"cv,omitempty"`
	Nonce       string    `json:"n,omitempty"`
	ReturnTo    string    `json:"rt,omitempty"`
	RedirectURI string    `json:"ru,omitempty"`
	Created     time.Time `json:"c,omitzero"`
}

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

// Options configures [New].
type Options struct {
	// Key encrypts every state and session; required (a key of zeros is refused).
	Key Key
	// Redis is the shared store; the caller keeps and closes it. nil: in process.
	Redis redis.UniversalClient
	// Timeout bounds each Redis call; default 250ms.
	Timeout time.Duration
	// MaxEntries bounds the in-process store, states and sessions together; default 100000.
	// Not used with Redis.
	MaxEntries int
	// Now is the in-process store's clock, for the expiry of entries and locks. nil: time.Now.
	// Redis expires keys by its own clock. Lock renewal is timed by real timers either way.
	Now func() time.Time
}

// Store keeps login states, sessions and refresh locks, in Redis or in process. It is safe for
// concurrent use.
type Store struct {
	aead cipher.AEAD
	b    backend
	mem  *memory // the in-process backend; nil with Redis
}

// backend is where encrypted values and locks live. Keys are complete (prefix and hash).
// Values passed in and returned are never modified in place.
type backend interface {
	set(ctx context.Context, key string, val []byte, ttl time.Duration, state bool) error
	get(ctx context.Context, key string) ([]byte, bool, error)
	take(ctx context.Context, key string) ([]byte, bool, error) // get and delete, atomically
	del(ctx context.Context, key string) error
	lock(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	unlock(ctx context.Context, key, token string) error
}

// New returns a store with o's settings.
func New(o Options) (*Store, error) {
	if o.Key.isZero() {
		return nil, errors.New("session: no key: Options.Key is all zeros")
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
	block, err := aes.NewCipher(o.Key[:])
	if err != nil {
		return nil, fmt.Errorf("session: %w", err) // names only the key's size
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	s := &Store{aead: aead}
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

// seal encrypts v's JSON for the entry at key.
func (s *Store) seal(key string, v any) ([]byte, error) {
	pt, err := json.Marshal(v)
	if err != nil {
		return nil, errors.New("session: encoding entry") // json's error could quote a value
	}
	ct := s.aead.Seal(nil, nil, pt, []byte(key)) //nolint:gosec // NewGCMWithRandomNonce draws the nonce itself
	clear(pt)
	return ct, nil
}

// open decrypts the entry at key into v; any failure is ErrCorrupt.
func (s *Store) open(key string, ct []byte, v any) error {
	pt, err := s.aead.Open(nil, nil, ct, []byte(key))
	if err != nil {
		return ErrCorrupt
	}
	err = json.Unmarshal(pt, v)
	clear(pt)
	if err != nil {
		// Authentic but not decodable: written by something else with this key. The same to
		// the caller, who ends the session.
		return ErrCorrupt
	}
	return nil
}

// checkPut validates what Put and PutState are given.
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

// PutState stores st under state for ttl, replacing any entry there. ttl <= 0 is an error.
func (s *Store) PutState(ctx context.Context, state string, st *LoginState, ttl time.Duration) error {
	if err := checkPut("state", state, st == nil, ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := storageKey(statePrefix, state)
	rec := stateRecord(*st)
	val, err := s.seal(key, &rec)
	if err != nil {
		return err
	}
	return s.b.set(ctx, key, val, ttl, true)
}

// TakeState returns the state stored under state and deletes it in the same atomic step
// (Redis GETDEL; in process, under the store's lock): of any number of concurrent calls, on
// any number of replicas, one at most gets it. An absent or expired state is (nil, false, nil);
// one that cannot be decrypted is consumed all the same and returns ErrCorrupt.
func (s *Store) TakeState(ctx context.Context, state string) (*LoginState, bool, error) {
	if len(state) < MinIDLen {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	key := storageKey(statePrefix, state)
	val, ok, err := s.b.take(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	var rec stateRecord
	if err := s.open(key, val, &rec); err != nil {
		return nil, false, err
	}
	st := LoginState(rec)
	return &st, true, nil
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
	val, err := s.seal(key, &rec)
	if err != nil {
		return err
	}
	return s.b.set(ctx, key, val, ttl, false)
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
	if err := s.open(key, val, &rec); err != nil {
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
