package ssf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/extauthz/extauthz/pkg/revocation"
)

// The event types the receiver acts on (CAEP 1.0, RISC 1.0, and SSF 1.0's
// verification event). gosec takes "credential" in a name for a secret: these are
// public URIs.
//
//nolint:gosec // G101: event type URIs, not credentials
const (
	EventSessionRevoked       = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventCredentialChange     = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventTokenClaimsChange    = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change"
	EventAccountDisabled      = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	EventAccountPurged        = "https://schemas.openid.net/secevent/risc/event-type/account-purged"
	EventSessionsRevoked      = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked"
	EventCredentialCompromise = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
	EventVerification         = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// effect is what an event type does.
type effect int

const (
	// ignore: acknowledged, logged and counted, nothing else.
	ignore effect = iota
	// acknowledge: the SSF verification event; nothing to revoke.
	acknowledge
	// revokeSubject: the subject's tokens (a complex subject's user,
	// else its session) issued before the event.
	revokeSubject
	// revokeSession: a complex subject's session if it names one, else
	// the subject.
	revokeSession
)

// eventKinds are the known event types, with their metric label (a
// bounded set: an unknown type is "other").
var eventKinds = map[string]struct {
	label  string
	effect effect
}{
	EventSessionRevoked:       {"session-revoked", revokeSession},
	EventCredentialChange:     {"credential-change", revokeSubject},
	EventTokenClaimsChange:    {"token-claims-change", revokeSubject},
	EventAccountDisabled:      {"account-disabled", revokeSubject},
	EventAccountPurged:        {"account-purged", revokeSubject},
	EventSessionsRevoked:      {"sessions-revoked", revokeSubject},
	EventCredentialCompromise: {"credential-compromise", revokeSubject},
	EventVerification:         {"verification", acknowledge},
}

// Metric labels of events no known type names.
const (
	labelOther = "other" // a verified SET of an unknown type
	labelNone  = "none"  // no verified event
)

// action is what a verified SET asks of the gateway.
type action struct {
	effect effect
	label  string
	// watermark, for revokeSubject and revokeSession.
	watermark revocation.Watermark
}

// decide maps a verified SET's event to its action. The subject is sub_id
// (SSF 1.0) or the event's subject member (the CAEP drafts before
// it); when both are present they must be the same identifier.
// Before is the event's event_timestamp (CAEP 1.0) if it has one, else
// the SET's iat, and may not be later than iat (beyond leeway): an event
// is not reported before it happens, and a watermark in the future would
// revoke tokens not yet issued.
func (tr *transmitter) decide(c *claims, leeway time.Duration) (action, error) {
	kind, known := eventKinds[c.eventType]
	if !known {
		return action{effect: ignore, label: labelOther}, nil
	}
	a := action{effect: kind.effect, label: kind.label}
	if kind.effect == acknowledge {
		return a, nil
	}
	raw := c.subID
	if inEvent, ok := c.event["subject"]; ok {
		if raw != nil && !sameJSON(raw, inEvent) {
			return a, fmt.Errorf("%w: sub_id and the event's subject differ", ErrMalformed)
		}
		raw = inEvent
	}
	if raw == nil {
		return a, fmt.Errorf("%w: no subject (sub_id)", ErrMalformed)
	}
	s, err := parseSubject(raw, true)
	if err != nil {
		return a, err
	}
	w := revocation.Watermark{
		Source:    "ssf:" + tr.issuer,
		Event:     c.eventType,
		EventTime: c.iat,
		Before:    c.iat,
	}
	if err := tr.selector(s, kind.effect == revokeSession, &w); err != nil {
		return a, err
	}
	ts, ok, err := numericDate(c.event, "event_timestamp")
	switch {
	case err != nil:
		return a, err
	case ok && ts.After(c.iat.Add(leeway)):
		return a, fmt.Errorf("%w: event_timestamp is later than iat", ErrMalformed)
	case ok:
		w.Before = ts
	}
	a.watermark = w
	return a, nil
}

// sameJSON reports whether two JSON values are equal once decoded
// (member order and spacing aside).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
