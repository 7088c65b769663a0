package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Nonces issues and checks server nonces (RFC 9449 §8, §9) without state:
// the nonce of a time slot is an HMAC-SHA256 of the slot's number under a
// key every replica shares, so any replica accepts a nonce another one
// issued, and nothing is stored or synchronised. A nonce is accepted in
// the slot it was issued in and the next one: it lives between one and
// two slots. Unpredictable (§8: "Nonce values MUST be unpredictable") as
// long as the key is secret.
//
// Replicas' clocks need only agree to well within a slot. At a slot
// boundary a replica whose clock is behind refuses, for that moment, a
// nonce a replica ahead has just issued; the client gets this replica's
// nonce with use_dpop_nonce and its retry succeeds anywhere. Changing the
// key makes every outstanding nonce stale at once: each client retries
// once.
type Nonces struct {
	key  []byte
	slot time.Duration
	now  func() time.Time
	// cache holds the nonces of the latest slot asked about and of the
	// slot before it, so that neither Current nor a check computes an
	// HMAC per request.
	cache atomic.Pointer[nonceSlot]
}

type nonceSlot struct {
	n             int64
	current, prev string
}

// MinNonceKeyBytes is the shortest key NewNonces accepts: 256 bits, the
// size of HMAC-SHA256's output (RFC 2104 §3).
const MinNonceKeyBytes = 32

// nonceLabel separates these MACs from any other use of the same key.
const nonceLabel = "extauthz dpop nonce v1\x00"

// NewNonces returns a nonce source. key is shared by every replica and
// at least MinNonceKeyBytes long; slot is how long a nonce is issued for
// (at least a second); now nil means time.Now.
func NewNonces(key []byte, slot time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < MinNonceKeyBytes {
		return nil, fmt.Errorf("dpop: nonce key of %d bytes (want at least %d)", len(key), MinNonceKeyBytes)
	}
	if slot < time.Second {
		return nil, fmt.Errorf("dpop: nonce slot %s is shorter than a second", slot)
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), slot: slot, now: now}, nil
}

// Current is the nonce to send in a DPoP-Nonce header now.
func (n *Nonces) Current() string { return n.slotNow().current }

// slotNow returns the cached nonces of the current slot, computing them
// when the slot has changed. Two goroutines may compute them at once:
// they compute the same values.
func (n *Nonces) slotNow() *nonceSlot {
	cur := n.now().UnixNano() / int64(n.slot)
	if c := n.cache.Load(); c != nil && c.n == cur {
		return c
	}
	c := &nonceSlot{n: cur, current: n.mac(cur), prev: n.mac(cur - 1)}
	n.cache.Store(c)
	return c
}

// mac is the nonce of slot i: base64url of the first 16 bytes of
// HMAC-SHA256(key, label ‖ i), 128 bits that cannot be forged without the
// key.
func (n *Nonces) mac(i int64) string {
	m := hmac.New(sha256.New, n.key)
	var b [len(nonceLabel) + 8]byte
	copy(b[:], nonceLabel)
	binary.BigEndian.PutUint64(b[len(nonceLabel):], uint64(i)) //nolint:gosec // the bits of i, whatever its sign
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// check judges a proof's nonce claim (RFC 9449 §9): absent, or a string
// that is not this slot's or the previous slot's nonce, is ErrUseNonce (the
// client is given the current one and retries); a claim that is not a
// non-empty string of at most maxNonceBytes is a malformed proof. An
// accepted previous slot's nonce returns the current one as next.
func (n *Nonces) check(pr *proof) (next string, err error) {
	if pr.nonce == nil {
		return "", fmt.Errorf("%w: no nonce", ErrUseNonce)
	}
	s, ok := nonceString(pr.nonce)
	if !ok {
		return "", fmt.Errorf("%w: nonce is not a non-empty string of at most %d bytes", ErrInvalidProof, maxNonceBytes)
	}
	c := n.slotNow()
	if subtle.ConstantTimeCompare([]byte(s), []byte(c.current)) == 1 {
		return "", nil
	}
	if subtle.ConstantTimeCompare([]byte(s), []byte(c.prev)) == 1 {
		return c.current, nil
	}
	return "", fmt.Errorf("%w: %w", ErrUseNonce, errStaleNonce)
}

var errStaleNonce = errors.New("nonce is not current (expired, or issued with another key)")
