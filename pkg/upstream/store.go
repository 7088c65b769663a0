package upstream

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/cache"
)

// Channel is the pub/sub channel on which replicas drop forgotten
// credentials. It is not the verdict cache's: a broadcast waits for every
// subscriber of its channel to acknowledge, and the verdict cache's
// replicas would not know these keys.
const Channel = "extauthz:v1:invalidate:upstream"

// namespace is the cache.Key namespace of every entry: "upstream". The
// verdict cache's namespaces always hold a "~" (a resource name and a
// digest of its configuration), so the two never meet in a shared Redis.
const namespace = "upstream"

// lockPrefix names the fleet-wide mint lock of a key.
const lockPrefix = "extauthz:v1:upstream-lock:"

// StoreOptions configures NewStore.
type StoreOptions struct {
	// Shared is the tier every replica reads (a *cache.Redis); nil keeps
	// credentials in process only.
	Shared cache.Shared
	// Locker makes a mint fleet-wide single; nil leaves only the
	// in-process single flight. It needs Shared: a replica waiting for
	// another's mint reads the result there.
	Locker Locker
	// Key encrypts entries in Shared (AES-256-GCM, 32 bytes; see
	// DeriveKey). Required with Shared.
	Key []byte
	// MaxEntries bounds the in-process tier (default 10000).
	MaxEntries int
	// Now is the clock entries expire by (nil: time.Now).
	Now func() time.Time
	// Logger receives what an operator must know (nil: discard).
	Logger *slog.Logger
	// CacheObserver is told of lookups by tier, shared tier errors and
	// evictions (nil: none).
	CacheObserver cache.Observer
}

// Store holds minted credentials for every Minter of a process: in
// process, and in the shared tier for the fleet. It is safe for concurrent
// use.
type Store struct {
	tiered *cache.Tiered[*entry]
	local  *cache.Memory[cache.Key, *entry]
	shared cache.Shared // nil: in process only
	codec  *sealer      // nil without shared
	locker Locker       // nil: no fleet lock
	now    func() time.Time
	log    *slog.Logger
}

// NewStore checks the options and builds a store.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Shared != nil && len(o.Key) != 32 {
		return nil, errors.New("upstream: a shared store needs a 32-byte encryption key")
	}
	if o.Locker != nil && o.Shared == nil {
		return nil, errors.New("upstream: a fleet lock needs a shared store")
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10000
	}
	// Given no clock, the in-process tier runs on its own, which reads the
	// time more cheaply than time.Now on a hit.
	local := cache.NewMemory[cache.Key, *entry](cache.MemoryOptions{MaxEntries: o.MaxEntries, Now: o.Now, Observer: o.CacheObserver})
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{local: local, shared: o.Shared, locker: o.Locker, now: o.Now, log: o.Logger}
	to := cache.TieredOptions[*entry]{
		Local:    []cache.LocalTier[*entry]{s.local},
		Place:    func(*entry) int { return 0 },
		Now:      o.Now,
		Observer: o.CacheObserver,
		Logger:   o.Logger,
		Channel:  Channel,
	}
	if o.Shared != nil {
		c, err := newSealer(o.Key)
		if err != nil {
			return nil, err
		}
		s.codec = c
		to.Shared, to.Codec = o.Shared, c
	}
	t, err := cache.NewTiered(to)
	if err != nil {
		return nil, err
	}
	s.tiered = t
	return s, nil
}

// Run follows the store's invalidation channel until ctx ends, dropping the
// credentials other replicas forget. Without a shared tier it returns at
// once.
func (s *Store) Run(ctx context.Context) { s.tiered.Run(ctx) }

// DeriveKey turns an operator's secret (at least 32 bytes, ideally random)
// into the store's AES-256 key with HKDF-SHA256 (RFC 5869). Every replica
// given the same secret derives the same key.
func DeriveKey(secret []byte) ([]byte, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("upstream: the credential cache secret has %d bytes; at least 32 are needed", len(secret))
	}
	return hkdf.Key(sha256.New, secret, nil, "extauthz upstream credential cache v1", 32)
}

// get returns the entry for key from the first tier that has it, and
// which tier answered.
func (s *Store) get(ctx context.Context, key cache.Key) (*entry, cache.Tier) {
	e, tier, _ := s.tiered.GetFrom(ctx, key)
	return e, tier
}

// getShared reads key from the shared tier only, bypassing a local copy
// that may be older (a waiting replica, a refresh), and keeps a hit
// locally.
func (s *Store) getShared(ctx context.Context, key cache.Key) *entry {
	if s.shared == nil {
		return nil
	}
	b, exp, ok, err := s.shared.GetExpiry(ctx, key.String())
	if err != nil || !ok {
		return nil
	}
	e, err := s.codec.Decode(b)
	if err != nil || e.hash != key.Hash {
		return nil
	}
	_ = s.local.Set(ctx, key, e, exp.Sub(s.now()))
	return e
}

// put stores e in every tier for ttl, replacing what is there.
func (s *Store) put(ctx context.Context, key cache.Key, e *entry, ttl time.Duration) {
	if err := s.tiered.Set(ctx, key, e, ttl); err != nil {
		s.log.Debug("upstream credential not stored in the shared tier", "err", err)
	}
}

// entry is one cached outcome of a mint: a credential, or a definitive
// refusal. Times are Unix nanoseconds by the store's clock.
type entry struct {
	// hash is the Hash of the key the entry was stored under. It travels
	// inside the encrypted entry, so that a ciphertext copied under
	// another key is recognised (and ignored) on read.
	hash [sha256.Size]byte
	// authorization is "Bearer " + token; token is its tail (setToken).
	authorization, token string
	refusal              error // non-nil: a cached refusal (one of refusals)
	code                 string
	// expiry is the minted token's own; subject the incoming token's
	// (exchange; 0 otherwise); until when the entry stops being used;
	// refreshAt when a hit starts a re-mint (0: never).
	expiry, subject, until, refreshAt int64

	// In process only: one background refresh at a time per entry, and
	// not before retryAt (after a failed one).
	refreshing atomic.Bool
	retryAt    atomic.Int64
}

// setToken sets the entry's token and the Authorization header value
// carrying it, in one string.
func (e *entry) setToken(tok string) {
	e.authorization = "Bearer " + tok
	e.token = e.authorization[len("Bearer "):]
}

// usable reports whether e may answer for key at now: the key it was
// stored under is this one, and neither the entry, nor the minted token,
// nor the incoming one has expired (defence in depth: the tiers' own
// expiry should already have dropped it).
func (e *entry) usable(key *cache.Key, now int64) bool {
	return e != nil && e.hash == key.Hash && now < e.until &&
		(e.refusal != nil || now < e.expiry) && (e.subject == 0 || now < e.subject)
}

// Entry encoding, inside the encryption: the key's hash, four times
// (expiry, subject, until, refreshAt; int64 big-endian), a kind byte, then
// the token (kindToken) or the refusal's error code (kindRefusal).
const (
	kindToken   = 0
	kindRefusal = 1
	entryHeader = sha256.Size + 4*8 + 1
	// sealVersion prefixes every ciphertext, so that a change of layout or
	// algorithm is a miss for the old entries, not a misreading.
	sealVersion = 1
)

// sealAAD binds a ciphertext to this use: the same key could never decrypt
// something sealed for another purpose as an entry.
var sealAAD = []byte("extauthz upstream credential v1")

// sealer is the shared tier's codec: AES-256-GCM with a random nonce of
// the encoded entry. A value that does not decrypt — another key, after a
// rotation; bytes written by someone else — is a decode error, which the
// tiered store treats as a miss.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// Encode implements cache.Codec.
func (c *sealer) Encode(e *entry) ([]byte, error) {
	payload := e.token
	kind := byte(kindToken)
	if e.refusal != nil {
		payload, kind = e.code, kindRefusal
	}
	plain := make([]byte, entryHeader+len(payload))
	copy(plain, e.hash[:])
	p := plain[sha256.Size:]
	for _, v := range [4]int64{e.expiry, e.subject, e.until, e.refreshAt} {
		binary.BigEndian.PutUint64(p, uint64(v)) //nolint:gosec // a time, read back as int64
		p = p[8:]
	}
	p[0] = kind
	copy(p[1:], payload)
	out := make([]byte, 1, 1+len(plain)+c.aead.Overhead())
	out[0] = sealVersion
	// No nonce is passed: NewGCMWithRandomNonce draws a fresh random one
	// for every Seal and prepends it.
	return c.aead.Seal(out, nil, plain, sealAAD), nil //nolint:gosec // G407: the nonce is random, see above
}

// Decode implements cache.Codec.
func (c *sealer) Decode(b []byte) (*entry, error) {
	if len(b) < 1 || b[0] != sealVersion {
		return nil, errors.New("upstream: not a sealed entry")
	}
	plain, err := c.aead.Open(nil, nil, b[1:], sealAAD)
	if err != nil {
		return nil, errors.New("upstream: entry does not decrypt")
	}
	if len(plain) < entryHeader {
		return nil, errors.New("upstream: entry too short")
	}
	e := &entry{}
	copy(e.hash[:], plain)
	p := plain[sha256.Size:]
	for _, v := range [4]*int64{&e.expiry, &e.subject, &e.until, &e.refreshAt} {
		*v = int64(binary.BigEndian.Uint64(p)) //nolint:gosec // written from an int64
		p = p[8:]
	}
	switch p[0] {
	case kindToken:
		e.setToken(string(p[1:]))
		if e.token == "" {
			return nil, errors.New("upstream: entry without a token")
		}
	case kindRefusal:
		e.code = string(p[1:])
		if e.refusal = refusals[e.code]; e.refusal == nil {
			return nil, errors.New("upstream: entry with an unknown refusal")
		}
	default:
		return nil, errors.New("upstream: entry of an unknown kind")
	}
	return e, nil
}
