package ssf

import (
	"encoding/json"
	"fmt"

	"github.com/extauthz/extauthz/pkg/revocation"
)

// SubjectClaims says which claim of the resources' tokens a transmitter's
// subject identifiers (RFC 9493) name. An iss_sub identifier always names
// the token's iss and sub; a session (of a complex subject) its sid.
type SubjectClaims struct {
	// Email is the claim an email identifier is compared with (default
	// "email"). The tokens must carry it, and the gateway keep it.
	Email string
	// Opaque is the claim an opaque identifier is compared with (default
	// "sub").
	Opaque string
}

// Claim names with a selector of their own in a revocation.Watermark.
const (
	claimSub      = "sub"
	claimSID      = "sid"
	claimClientID = "client_id"
	claimEmail    = "email"
)

// The subject identifier formats read here (RFC 9493 §3.2; complex from
// SSF 1.0).
const (
	formatIssSub  = "iss_sub"
	formatEmail   = "email"
	formatOpaque  = "opaque"
	formatComplex = "complex"
)

// subject is a subject identifier as this package reads it: a simple one
// (iss_sub, email, opaque), or a complex one naming a user and a session.
// The other members of a complex subject (tenant, device, application,
// group, org_unit) are not read: without them a revocation is broader,
// never narrower, than the event meant.
type subject struct {
	format, iss, sub, email, id string
	user, session               *subject
}

// parseSubject reads a subject identifier. complex says whether a
// complex subject is allowed here (it is not inside another). An object
// without format but with a user or session member is read as complex,
// as the CAEP drafts before SSF 1.0 wrote them.
func parseSubject(raw json.RawMessage, complexOK bool) (*subject, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: the subject is not an object", ErrMalformed)
	}
	s := &subject{}
	f, hasFormat := m["format"]
	if hasFormat {
		if err := str(f, &s.format); err != nil {
			return nil, fmt.Errorf("%w: the subject's format is not a string", ErrMalformed)
		}
	} else if _, u := m["user"]; u || m["session"] != nil {
		s.format = formatComplex
	}
	member := func(name string, dst *string) error {
		if err := str(m[name], dst); err != nil || *dst == "" {
			return fmt.Errorf("%w: a subject of format %s needs %s, a non-empty string", ErrMalformed, s.format, name)
		}
		return nil
	}
	var err error
	switch s.format {
	case formatIssSub:
		if err = member("iss", &s.iss); err == nil {
			err = member("sub", &s.sub)
		}
	case formatEmail:
		err = member("email", &s.email)
	case formatOpaque:
		err = member("id", &s.id)
	case formatComplex:
		if !complexOK {
			return nil, fmt.Errorf("%w: a complex subject inside a complex subject", ErrMalformed)
		}
		for _, p := range []struct {
			name string
			dst  **subject
		}{{"user", &s.user}, {"session", &s.session}} {
			if v, ok := m[p.name]; ok {
				if *p.dst, err = parseSubject(v, false); err != nil {
					return nil, err
				}
			}
		}
	default:
		// Refused rather than acknowledged: a revocation the gateway
		// cannot apply must not be reported as received.
		return nil, fmt.Errorf("%w: subject format %s is not supported", ErrMalformed, quote(s.format))
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// selector fills the watermark's selectors for a subject, sessionFirst
// choosing a complex subject's session over its user (CAEP
// session-revoked revokes the session, the other events the user's
// tokens). tokenIssuer, when set, narrows every selector but iss_sub's,
// which names its own issuer.
func (tr *transmitter) selector(s *subject, sessionFirst bool, w *revocation.Watermark) error {
	if s.format == formatComplex {
		// A session is an opaque identifier, the token's sid.
		session := s.session
		if session != nil && session.format != formatOpaque {
			session = nil
		}
		switch {
		case session != nil && (sessionFirst || s.user == nil):
			w.Issuer = tr.tokenIssuer
			w.SessionID = session.id
			return nil
		case s.user != nil:
			return tr.selector(s.user, false, w)
		}
		return fmt.Errorf("%w: the complex subject names no user nor opaque session", ErrMalformed)
	}
	w.Issuer = tr.tokenIssuer
	switch s.format {
	case formatIssSub:
		w.Issuer, w.Subject = s.iss, s.sub
	case formatEmail:
		setClaim(w, tr.subjects.Email, s.email)
	case formatOpaque:
		setClaim(w, tr.subjects.Opaque, s.id)
	}
	return nil
}

// setClaim selects the tokens whose claim name has value: the watermark's
// own selector for sub, sid and client_id, else a kept claim.
func setClaim(w *revocation.Watermark, name, value string) {
	switch name {
	case claimSub:
		w.Subject = value
	case claimSID:
		w.SessionID = value
	case claimClientID:
		w.ClientID = value
	default:
		w.Claim, w.Value = name, value
	}
}

// quote renders an attacker-chosen string for an error description:
// quoted, and cut at 64 bytes.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
