package oauthflow

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the refresh families' lifetimes ([FacadeStoreOptions]).
const (
	DefaultRefreshIdleTTL = 7 * 24 * time.Hour
	DefaultRefreshMaxTTL  = 30 * 24 * time.Hour
)

// ErrRefreshReused is a refresh token presented after it was rotated: a copy is in two hands,
// so the whole family is revoked (RFC 9700 §4.14.2, OAuth 2.1 §4.3.1). It wraps
// ErrInvalidGrant.
var ErrRefreshReused = fmt.Errorf("%w: refresh token reused; its family is revoked", ErrInvalidGrant)

// RefreshFamily is one chain of rotating refresh tokens: every refresh token the facade
// issues from one authorization code belongs to one family, and only the latest is valid.
type RefreshFamily struct {
	// ID names the family; set by StartFamily. Not a secret: it is part of every refresh token
	// of the family, which is worthless without the family's MAC.
	ID       string
	ClientID string
	Subject  string
	Resource string
	Scopes   []string
	// UpstreamIssuer and UpstreamRefreshToken are the provider's: a refresh asks the provider
	// whether the user is still allowed in before the facade rotates. Sealed at rest.
	UpstreamIssuer       string
	UpstreamRefreshToken string
	AuthTime             time.Time
	// Created is when the family began (set by StartFamily); it ends RefreshMaxTTL later
	// whatever the rotations.
	Created time.Time
}

// familyRecord is the stored form of a family: its fields, the generation of the one valid
// refresh token, and the secret that refresh tokens are MACed with.
type familyRecord struct {
	ClientID  string   `json:"cid"`
	Subject   string   `json:"sub"`
	Resource  string   `json:"res"`
	Scopes    []string `json:"scp,omitempty"`
	UpIssuer  string   `json:"uiss,omitempty"`
	UpRefresh string   `json:"urt,omitempty"`
	AuthTime  int64    `json:"at,omitempty"`
	Created   int64    `json:"c"` // Unix milliseconds
	Gen       uint64   `json:"g"`
	Secret    []byte   `json:"k"`
}

// A refresh token is "<family id>.<generation>.<MAC>": the MAC, HMAC-SHA256 under the
// family's own secret, of the family id and the generation. Only the family's current
// generation is valid; a MAC that verifies for an older one is a reuse. No list of spent
// tokens is kept: the generation counter says which were.
const refreshMACLabel = "extauthz facade refresh token v1"

func familyMAC(secret []byte, id string, gen uint64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(refreshMACLabel))
	m.Write([]byte{0})
	m.Write([]byte(id))
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	m.Write(g[:])
	return m.Sum(nil)
}

func refreshToken(id string, gen uint64, secret []byte) string {
	return id + "." + strconv.FormatUint(gen, 10) + "." + base64.RawURLEncoding.EncodeToString(familyMAC(secret, id, gen))
}

// maxRefreshTokenLen bounds what parseRefreshToken reads: a family id of 43 characters, a
// generation of at most 20 digits, a MAC of 43, two dots.
const maxRefreshTokenLen = 43 + 1 + 20 + 1 + 43

// parseRefreshToken splits a refresh token; ok is false for anything the facade could not
// have issued.
func parseRefreshToken(rt string) (id string, gen uint64, mac []byte, ok bool) {
	if len(rt) > maxRefreshTokenLen {
		return "", 0, nil, false
	}
	id, rest, ok1 := strings.Cut(rt, ".")
	g, m, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(id) < MinIDLen || g == "" || (len(g) > 1 && g[0] == '0') {
		return "", 0, nil, false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(unreserved(c) && c != '.' && c != '~') {
			return "", 0, nil, false
		}
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil || gen == 0 {
		return "", 0, nil, false
	}
	// The decoder skips line breaks: only the MAC's one spelling is taken.
	mac, err = base64.RawURLEncoding.Strict().DecodeString(m)
	if err != nil || len(mac) != sha256.Size || base64.RawURLEncoding.EncodeToString(mac) != m {
		return "", 0, nil, false
	}
	return id, gen, mac, true
}

// familyTTL is how long a family written at now lives: RefreshIdleTTL, cut to what is left of
// RefreshMaxTTL since it was created.
func (s *FacadeStore) familyTTL(created, now time.Time) time.Duration {
	return min(s.refreshIdle, created.Add(s.refreshMax).Sub(now))
}

// StartFamily stores a new refresh family for f (its ClientID, Subject and Resource
// required) and returns its first refresh token; it sets f.ID and f.Created.
func (s *FacadeStore) StartFamily(ctx context.Context, f *RefreshFamily) (string, error) {
	if f == nil || f.ClientID == "" || f.Subject == "" || f.Resource == "" {
		return "", errors.New("facade: a refresh family needs a client, a subject and a resource")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	id, err := NewID()
	if err != nil {
		return "", err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("facade: random secret: %w", err)
	}
	now := s.now()
	rec := familyRecord{
		ClientID: f.ClientID, Subject: f.Subject, Resource: f.Resource, Scopes: f.Scopes,
		UpIssuer: f.UpstreamIssuer, UpRefresh: f.UpstreamRefreshToken,
		Created: now.UnixMilli(), Gen: 1, Secret: secret,
	}
	if !f.AuthTime.IsZero() {
		rec.AuthTime = f.AuthTime.Unix()
	}
	key := storageKey(facadeFamilyPrefix, id)
	val, err := s.seal.sealJSON(key, &rec)
	if err != nil {
		return "", err
	}
	ok, err := s.b.add(ctx, key, val, s.familyTTL(time.UnixMilli(rec.Created), now))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("facade: family id collision") // 256 random bits: never
	}
	f.ID, f.Created = id, time.UnixMilli(rec.Created)
	return refreshToken(id, rec.Gen, secret), nil
}

// familyOf reads the family a refresh token names and checks the token's MAC.
func (s *FacadeStore) familyOf(ctx context.Context, rt string) (key string, val []byte, rec *familyRecord, gen uint64, err error) {
	id, gen, mac, ok := parseRefreshToken(rt)
	if !ok {
		return "", nil, nil, 0, fmt.Errorf("%w: not a refresh token of the facade", ErrInvalidGrant)
	}
	if err := ctx.Err(); err != nil {
		return "", nil, nil, 0, err
	}
	key = storageKey(facadeFamilyPrefix, id)
	val, found, err := s.b.get(ctx, key)
	if err != nil {
		return "", nil, nil, 0, err
	}
	if !found {
		return "", nil, nil, 0, fmt.Errorf("%w: unknown, expired or revoked refresh token", ErrInvalidGrant)
	}
	rec = &familyRecord{}
	if err := s.seal.openJSON(key, val, rec); err != nil {
		return "", nil, nil, 0, fmt.Errorf("%w: the stored family does not open", ErrInvalidGrant)
	}
	if !hmac.Equal(mac, familyMAC(rec.Secret, id, gen)) {
		return "", nil, nil, 0, fmt.Errorf("%w: the refresh token's MAC does not verify", ErrInvalidGrant)
	}
	return key, val, rec, gen, nil
}

// RotateRefresh spends refresh token rt, presented by clientID, and returns the family's next
// refresh token with the family as it now stands.
//
// The token must be the family's current one: a token the facade never issued, or of a family
// that expired or was revoked, is ErrInvalidGrant; a token of the family that was already
// rotated is ErrRefreshReused, and the family is revoked, so that whoever holds the newer
// token loses it too (one of the two copies is an attacker's). The token must have been issued
// to clientID (RFC 6749 §6), and the family must be younger than RefreshMaxTTL.
//
// update, when not nil, runs once the token is found valid and before anything is written:
// the token endpoint refreshes at the provider there and may change UpstreamRefreshToken (a
// rotated provider token) and narrow Scopes; other fields are kept as they were. An error
// from update is returned as it is and rotates nothing (a provider that refused for good is
// the caller's to answer with [FacadeStore.RevokeFamily]).
//
// The rotation is a compare-and-swap of the sealed family: of two concurrent rotations with
// the same token, one wins and the other is a reuse, which revokes the family. A failed store
// call is returned as it is; whether the rotation happened is then unknown, and a retry with
// the same token may find it reused.
func (s *FacadeStore) RotateRefresh(ctx context.Context, rt, clientID string, update func(*RefreshFamily) error) (string, *RefreshFamily, error) {
	key, val, rec, gen, err := s.familyOf(ctx, rt)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	created := time.UnixMilli(rec.Created)
	switch {
	case gen < rec.Gen:
		if err := s.b.del(ctx, key); err != nil {
			return "", nil, err
		}
		return "", nil, ErrRefreshReused
	case gen > rec.Gen:
		return "", nil, fmt.Errorf("%w: a generation the family never reached", ErrInvalidGrant)
	case subtle.ConstantTimeCompare([]byte(rec.ClientID), []byte(clientID)) != 1:
		return "", nil, fmt.Errorf("%w: the refresh token was issued to another client", ErrInvalidGrant)
	case s.familyTTL(created, now) <= 0:
		_ = s.b.del(ctx, key)
		return "", nil, fmt.Errorf("%w: the refresh family is past its lifetime", ErrInvalidGrant)
	}
	f := rec.family(rt)
	if update != nil {
		g := *f
		g.Scopes = slices.Clone(f.Scopes)
		if err := update(&g); err != nil {
			return "", nil, err
		}
		for _, sc := range g.Scopes {
			if !slices.Contains(f.Scopes, sc) {
				return "", nil, errors.New("facade: a refresh may only narrow the scopes")
			}
		}
		f.UpstreamRefreshToken, f.Scopes = g.UpstreamRefreshToken, g.Scopes
	}
	rec.UpRefresh, rec.Scopes = f.UpstreamRefreshToken, f.Scopes
	rec.Gen++
	newVal, err := s.seal.sealJSON(key, rec)
	if err != nil {
		return "", nil, err
	}
	now = s.now()
	ttl := s.familyTTL(created, now)
	if ttl <= 0 {
		_ = s.b.del(ctx, key)
		return "", nil, fmt.Errorf("%w: the refresh family is past its lifetime", ErrInvalidGrant)
	}
	swapped, err := s.b.swap(ctx, key, val, newVal, ttl)
	if err != nil {
		return "", nil, err
	}
	if !swapped {
		// Another rotation of the same token won, or the family was revoked meanwhile.
		if err := s.b.del(ctx, key); err != nil {
			return "", nil, err
		}
		return "", nil, ErrRefreshReused
	}
	return refreshToken(f.ID, rec.Gen, rec.Secret), f, nil
}

// family is the public form of rec, whose id is the one in rt.
func (rec *familyRecord) family(rt string) *RefreshFamily {
	id, _, _ := strings.Cut(rt, ".")
	f := &RefreshFamily{
		ID: id, ClientID: rec.ClientID, Subject: rec.Subject, Resource: rec.Resource,
		Scopes: slices.Clone(rec.Scopes), UpstreamIssuer: rec.UpIssuer, UpstreamRefreshToken: rec.UpRefresh,
		Created: time.UnixMilli(rec.Created),
	}
	if rec.AuthTime != 0 {
		f.AuthTime = time.Unix(rec.AuthTime, 0)
	}
	return f
}

// RevokeRefresh revokes the family of refresh token rt (RFC 7009: revoking a refresh token
// ends its grant), whichever of its generations rt is. A token the facade did not issue, or
// whose family is gone, is not an error (RFC 7009 §2.2); one issued to another client than
// clientID is ErrInvalidGrant and revokes nothing.
func (s *FacadeStore) RevokeRefresh(ctx context.Context, rt, clientID string) error {
	key, _, rec, _, err := s.familyOf(ctx, rt)
	if errors.Is(err, ErrInvalidGrant) {
		return nil
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(rec.ClientID), []byte(clientID)) != 1 {
		return fmt.Errorf("%w: the refresh token was issued to another client", ErrInvalidGrant)
	}
	return s.b.del(ctx, key)
}

// RevokeFamily ends the family id: none of its refresh tokens works any more. An absent family
// is not an error.
func (s *FacadeStore) RevokeFamily(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.b.del(ctx, storageKey(facadeFamilyPrefix, id))
}
