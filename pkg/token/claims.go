package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ClaimNames says which claims hold a token's audiences, scopes and client
// id, for authorization servers that do not put them where RFC 9068 does.
// An empty name means the standard one.
type ClaimNames struct {
	// Audience: "aud" by default (RFC 8707). AWS Cognito access tokens
	// carry no aud: "client_id" stands in for it.
	Audience string
	// Scope: "scope" by default (a space-separated string, RFC 9068),
	// falling back to "scp" when absent. A named claim may be a string or
	// an array of strings ("scp" at Okta and Microsoft Entra ID).
	Scope string
	// ClientID: "client_id" by default, falling back to "azp" (RFC 9068
	// §2.2); "cid" at Okta.
	ClientID string
	// Keep names further claims to keep, as decoded JSON values, for
	// policies to read (tenant, groups, roles). Absent ones are not kept.
	Keep []string
}

// standard reports whether every name is the default, so the claims can be
// read with no generic decoding.
func (n ClaimNames) standard() bool {
	return len(n.Keep) == 0 && (n.Audience == "" || n.Audience == "aud") &&
		(n.Scope == "" || n.Scope == "scope") &&
		(n.ClientID == "" || n.ClientID == "client_id")
}

// Payload is a JSON object of claims — a JWT's claims set or an RFC 7662
// introspection response, which share their member names — read into the
// facts a decision needs. Nothing in it is trusted until the caller has
// authenticated where it came from.
type Payload struct {
	Issuer, Subject, ClientID string
	Audience, Scopes          []string
	// Extra holds the claims ClaimNames.Keep asked for that are present.
	Extra map[string]any
	// Expiry, NotBefore and IssuedAt are zero when the claim is absent.
	Expiry, NotBefore, IssuedAt time.Time
}

// payloadJSON is the wire form of the standard claims.
type payloadJSON struct {
	Iss      string       `json:"iss"`
	Sub      string       `json:"sub"`
	Aud      stringList   `json:"aud"`
	Exp      *numericDate `json:"exp"`
	Nbf      *numericDate `json:"nbf"`
	Iat      *numericDate `json:"iat"`
	ClientID string       `json:"client_id"`
	Azp      string       `json:"azp"`
	Scope    string       `json:"scope"`
	Scp      scopeList    `json:"scp"`
}

// ParsePayload reads a JSON object of claims, taking the audiences, scopes
// and client id from the claims that names gives.
func ParsePayload(data []byte, names ClaimNames) (*Payload, error) {
	var w payloadJSON
	if err := decodeObject(data, &w); err != nil {
		return nil, err
	}
	p := &Payload{Issuer: w.Iss, Subject: w.Sub, ClientID: w.ClientID, Audience: w.Aud}
	if p.ClientID == "" {
		p.ClientID = w.Azp
	}
	if w.Scope != "" {
		p.Scopes = strings.Fields(w.Scope)
	} else if len(w.Scp) > 0 {
		p.Scopes = w.Scp
	}
	p.Expiry, p.NotBefore, p.IssuedAt = w.Exp.time(), w.Nbf.time(), w.Iat.time()
	if names.standard() {
		return p, nil
	}
	// Rare: only servers configured with other claim names pay for a
	// second, generic decoding.
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, errors.New("invalid JSON")
	}
	if n := names.Audience; n != "" && n != "aud" {
		p.Audience = nil
		if raw, ok := all[n]; ok {
			var l stringList
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, fmt.Errorf("claim %q must be a string or an array of strings", n)
			}
			p.Audience = l
		}
	}
	if n := names.Scope; n != "" && n != "scope" {
		p.Scopes = nil
		if raw, ok := all[n]; ok {
			var l scopeList
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, fmt.Errorf("claim %q must be a string or an array of strings", n)
			}
			p.Scopes = l
		}
	}
	for _, n := range names.Keep {
		raw, ok := all[n]
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("claim %q: invalid JSON", n)
		}
		if p.Extra == nil {
			p.Extra = make(map[string]any, len(names.Keep))
		}
		p.Extra[n] = v
	}
	if n := names.ClientID; n != "" && n != "client_id" {
		p.ClientID = ""
		if raw, ok := all[n]; ok {
			if err := json.Unmarshal(raw, &p.ClientID); err != nil {
				return nil, fmt.Errorf("claim %q must be a string", n)
			}
		}
	}
	return p, nil
}

// Claims checks the validity period against now (with leeway) and returns
// the Claims. requireExpiry refuses a payload without exp: JWT access
// tokens must carry one (RFC 9068 §2.2), an introspection response may
// omit it (RFC 7662 §2.2).
func (p *Payload) Claims(now time.Time, leeway time.Duration, requireExpiry bool) (*Claims, error) {
	if p.Expiry.IsZero() {
		if requireExpiry {
			return nil, ErrMissingExpiry
		}
	} else if !now.Before(p.Expiry.Add(leeway)) {
		return nil, ErrExpired
	}
	if !p.NotBefore.IsZero() && now.Add(leeway).Before(p.NotBefore) {
		return nil, fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	}
	if !p.IssuedAt.IsZero() && now.Add(leeway).Before(p.IssuedAt) {
		return nil, fmt.Errorf("%w: iat is in the future", ErrNotYetValid)
	}
	g := &Grant{Issuer: p.Issuer, ClientID: p.ClientID, Audience: p.Audience, Scopes: p.Scopes}
	g.Scope = strings.Join(g.Scopes, " ")
	return &Claims{Subject: p.Subject, Expiry: p.Expiry, Grant: g, Extra: p.Extra}, nil
}

// decodeSegment decodes one base64url (unpadded, RFC 7515 §2) JSON object.
func decodeSegment(seg string, into any) error {
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return errors.New("invalid base64url")
	}
	return decodeObject(buf[:n], into)
}

// decodeSegmentBytes decodes one base64url segment without parsing it.
func decodeSegmentBytes(seg string) ([]byte, error) {
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return nil, errors.New("invalid base64url")
	}
	return buf[:n], nil
}

// decodeObject decodes exactly one JSON object.
func decodeObject(data []byte, into any) error {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(into); err != nil {
		return errors.New("invalid JSON")
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

// stringList accepts a JSON string or an array of strings, as aud may be
// either (RFC 7519 §4.1.3). A single string is one value.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	return unmarshalStrings(b, (*[]string)(l), func(s string) []string { return []string{s} })
}

// scopeList reads scp, which servers send as an array or, like scope, as
// one space-separated string.
type scopeList []string

func (l *scopeList) UnmarshalJSON(b []byte) error {
	return unmarshalStrings(b, (*[]string)(l), strings.Fields)
}

// unmarshalStrings decodes an array of strings, or one string turned into
// a list by fromString.
func unmarshalStrings(b []byte, into *[]string, fromString func(string) []string) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*into = fromString(s)
		return nil
	}
	return json.Unmarshal(b, into)
}

// numericDate is seconds since the epoch, possibly fractional (RFC 7519 §2).
type numericDate float64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("numeric date must be a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("numeric date out of range")
	}
	*d = numericDate(f)
	return nil
}

// time converts a present date; an absent one (nil) is the zero time.
func (d *numericDate) time() time.Time {
	if d == nil {
		return time.Time{}
	}
	sec, frac := math.Modf(float64(*d))
	return time.Unix(int64(sec), int64(frac*1e9))
}
