// Package upstream mints the access token the gateway sends to the MCP
// server behind a protected resource, instead of the client's own: by RFC
// 8693 token exchange of the client's verified token (ModeExchange), or
// with the gateway's own client credentials (ModeClientCredentials, RFC
// 6749 §4.4). It is not for verifying incoming tokens (package token) nor
// for deciding what a request may do (package authz); it only gets,
// checks and caches the credential the decision has asked for.
//
// # What is cached
//
// One entry per key: in exchange mode per incoming token (its
// token.CacheHash) and resource configuration, in client_credentials mode
// per resource configuration. The key's hash covers a fingerprint of
// everything the credential depends on (resource name, mode, issuer,
// client, audiences, resources, scopes, actor), so that a change of
// configuration never serves a credential asked for differently. An entry
// holds either a minted token, until min(its expiry − ExpiryMargin, the
// incoming token's expiry, now + MaxTTL), or a definitive refusal of the
// authorization server (invalid_grant and the like), for RefusalTTL.
// Nothing transient — a timeout, a 5xx, a refused client authentication,
// an answer the gateway cannot use — is cached.
//
// A minted token is checked before it is used or cached: a Bearer access
// token, and if it is a JWT, signed by the server's keys, issued by it,
// not expired, and for no audience the gateway did not ask for.
//
// # Where
//
// In a bounded in-process tier and, when a Store has one, in a shared tier
// (Redis) that every replica reads, through a cache.Tiered store on its
// own invalidation channel. Forget drops an entry from every tier of every
// replica.
//
// # Why encrypted
//
// A minted token is a live credential for the upstream, unlike the
// verdicts the verdict cache keeps. In the shared tier each entry is
// AES-256-GCM sealed with a random nonce under a key every replica derives
// from an operator secret (DeriveKey), so that a Redis dump, a replica of
// it or a MONITOR yields no credential. The sealed plaintext holds the
// hash of the key it was stored under, checked on every read: a
// ciphertext copied under another key — one user's credential offered to
// another by someone who can write to Redis — is a miss. So is anything
// that does not decrypt: after a key rotation each entry costs one mint.
//
// # One mint per key
//
// Within a process, concurrent requests for one key share one mint
// (single flight), which runs detached from any one caller's context
// (bounded by Timeout) so that a caller giving up does not cancel it for
// the others. Across replicas, a Locker (a Redis SET NX PX lock,
// "extauthz:v1:upstream-lock:<key hash>", held at most Timeout + 1s)
// elects the minter: it re-reads the shared tier, mints and stores; the
// others poll the shared tier every 20ms until the entry appears, the lock
// is free again (they then take it), or Timeout + 1s has passed
// (ErrUnavailable). When the lock cannot be reached, a replica mints
// without it: Redis down costs extra mints, never a denial.
//
// A hit on an entry with less than RefreshAhead of its cached life left
// is answered at once and starts one background re-mint (single flight,
// and skipped while another replica holds the lock), which replaces the
// entry: a busy key never waits on the token endpoint.
package upstream
