// Package revocation holds revocation watermarks: "the tokens of this
// subject (or session, or client, or issuer) issued at or before T are
// revoked". A watermark is stored in the shared tier (Redis), pushed to
// every replica, and checked on every decision, on a cache hit as after a
// verification. It outlives every token it can refuse, and no longer.
//
// Index holds watermarks in process and answers on every decision; Store
// is the Revoker that shares them through Redis. The package does not
// receive revocation events (Shared Signals is pkg/ssf's), nor decide
// requests: pkg/authz asks Revoked on each, and refuses what it revokes.
package revocation

import (
	"context"
	"errors"
	"time"
)

// Watermark revokes the tokens that match all of its set selectors and
// were issued at or before Before. At least one of Subject, SessionID,
// ClientID or Claim must be set, or Issuer alone (every token of that
// issuer).
type Watermark struct {
	// Issuer, when set, narrows the watermark to tokens whose iss is
	// exactly this.
	Issuer string
	// Subject matches the token's sub; SessionID its sid; ClientID its
	// client_id (else azp).
	Subject, SessionID, ClientID string
	// Claim and Value, when set, match a string claim the tokens carry
	// (such as email), kept from the token for this purpose.
	Claim, Value string
	// Before: a token whose iat is at or before it is revoked (iat has
	// whole seconds: the second of Before itself is refused, the near miss
	// on the safe side). A token without iat counts as issued at the epoch.
	Before time.Time
	// Source names who revoked, for the audit log: "admin", or
	// "ssf:<transmitter issuer>".
	Source string
	// Event is what caused it (an SSF event type URI, or "admin").
	Event string
	// EventTime is when the cause happened (a SET's iat), for the
	// end-to-end delay metric; zero when not known.
	EventTime time.Time
}

// Revoker records watermarks for the whole fleet.
type Revoker interface {
	// Revoke stores w in the shared tier, publishes it to every replica
	// and holds it on this one. It returns nil once w is stored in the
	// shared tier; ErrNoSharedTier when none is configured (w holds on
	// this replica only, which it does now); any other error when the
	// shared tier is configured but failed: w still holds here, and the
	// sender must be told to retry, since other replicas may not have it.
	Revoke(ctx context.Context, w Watermark) error
}

// ErrNoSharedTier means a watermark holds on this replica only, as
// configured.
var ErrNoSharedTier = errors.New("revocation: no shared tier: held on this replica only")
