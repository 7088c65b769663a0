package ssf_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/ssftest"
	"github.com/extauthz/extauthz/pkg/revocation"
	"github.com/extauthz/extauthz/pkg/ssf"
)

const idp = "https://idp.example.com"

// Each mapped event, with each kind of subject, becomes the exact
// watermark: Before the event_timestamp if any else iat, EventTime iat,
// Source ssf:<iss>, Event the type.
func TestEventsBecomeWatermarks(t *testing.T) {
	t.Parallel()
	iat := t0.Add(-30 * time.Second)
	ts := t0.Add(-2 * time.Minute)
	user := ssftest.IssSub(idp, "user-1")
	session := ssftest.Opaque("sess-9")
	for _, tc := range []struct {
		name     string
		settings func(*ssf.Transmitter)
		set      ssftest.SET
		rs256    bool                 // signed with the RS256 key
		want     revocation.Watermark // Source, Event, EventTime filled in below
	}{
		{
			name: "session-revoked, complex subject: the session",
			set:  ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(user, session)},
			want: revocation.Watermark{SessionID: "sess-9", Before: iat},
		},
		{
			name: "session-revoked, event_timestamp: before it",
			set: ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(user, session),
				Payload: map[string]any{"event_timestamp": ts.Unix(), "initiating_entity": "admin"}},
			want: revocation.Watermark{SessionID: "sess-9", Before: ts},
		},
		{
			name: "session-revoked, no session: the subject",
			set:  ssftest.SET{Event: ssf.EventSessionRevoked, Subject: user},
			want: revocation.Watermark{Issuer: idp, Subject: "user-1", Before: iat},
		},
		{
			name: "session-revoked, complex without a session: the user",
			set:  ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(user, nil)},
			want: revocation.Watermark{Issuer: idp, Subject: "user-1", Before: iat},
		},
		{
			name: "session-revoked, older CAEP: the subject in the event, without format",
			set: ssftest.SET{Event: ssf.EventSessionRevoked, Payload: map[string]any{
				"subject": map[string]any{"user": user, "session": session}}},
			want: revocation.Watermark{SessionID: "sess-9", Before: iat},
		},
		{
			name: "credential-change, complex subject: the user, not the session",
			set: ssftest.SET{Event: ssf.EventCredentialChange, Subject: ssftest.Complex(user, session),
				Payload: map[string]any{"credential_type": "password", "change_type": "update", "event_timestamp": ts.Unix()}},
			want: revocation.Watermark{Issuer: idp, Subject: "user-1", Before: ts},
		},
		{
			name: "credential-change, complex with only a session: the session",
			set:  ssftest.SET{Event: ssf.EventCredentialChange, Subject: ssftest.Complex(nil, session)},
			want: revocation.Watermark{SessionID: "sess-9", Before: iat},
		},
		{
			name: "token-claims-change, email: the email claim",
			set:  ssftest.SET{Event: ssf.EventTokenClaimsChange, Subject: ssftest.Email("ann@example.com")},
			want: revocation.Watermark{Claim: "email", Value: "ann@example.com", Before: iat},
		},
		{
			name: "account-disabled, opaque: sub",
			set:  ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("u-77")},
			want: revocation.Watermark{Subject: "u-77", Before: iat},
		},
		{
			name: "account-purged, iss_sub",
			set:  ssftest.SET{Event: ssf.EventAccountPurged, Subject: user},
			want: revocation.Watermark{Issuer: idp, Subject: "user-1", Before: iat},
		},
		{
			name: "sessions-revoked, email, older RISC: the subject in the event",
			set: ssftest.SET{Event: ssf.EventSessionsRevoked, Payload: map[string]any{
				"subject": ssftest.Email("bob@example.com")}},
			want: revocation.Watermark{Claim: "email", Value: "bob@example.com", Before: iat},
		},
		{
			name: "sub_id and the event's subject both, the same",
			set: ssftest.SET{Event: ssf.EventSessionsRevoked, Subject: ssftest.Email("bob@example.com"),
				Payload: map[string]any{"subject": map[string]any{"email": "bob@example.com", "format": "email"}}},
			want: revocation.Watermark{Claim: "email", Value: "bob@example.com", Before: iat},
		},
		{
			name:  "credential-compromise, iss_sub, signed RS256",
			set:   ssftest.SET{Event: ssf.EventCredentialCompromise, Subject: user, Payload: map[string]any{"credential_type": "password"}},
			rs256: true,
			want:  revocation.Watermark{Issuer: idp, Subject: "user-1", Before: iat},
		},
		{
			name: "mapped claims and a token issuer",
			settings: func(s *ssf.Transmitter) {
				s.Subjects = ssf.SubjectClaims{Email: "upn", Opaque: "client_id"}
				s.TokenIssuer = "https://tokens.example.com"
			},
			set:  ssftest.SET{Event: ssf.EventCredentialChange, Subject: ssftest.Email("ann@example.com")},
			want: revocation.Watermark{Issuer: "https://tokens.example.com", Claim: "upn", Value: "ann@example.com", Before: iat},
		},
		{
			name:     "opaque mapped to sid",
			settings: func(s *ssf.Transmitter) { s.Subjects.Opaque = "sid"; s.TokenIssuer = "https://tokens.example.com" },
			set:      ssftest.SET{Event: ssf.EventAccountDisabled, Subject: ssftest.Opaque("s-1")},
			want:     revocation.Watermark{Issuer: "https://tokens.example.com", SessionID: "s-1", Before: iat},
		},
		{
			name:     "a session is narrowed to the token issuer; iss_sub keeps its own",
			settings: func(s *ssf.Transmitter) { s.TokenIssuer = "https://tokens.example.com" },
			set:      ssftest.SET{Event: ssf.EventSessionRevoked, Subject: ssftest.Complex(user, session)},
			want:     revocation.Watermark{Issuer: "https://tokens.example.com", SessionID: "sess-9", Before: iat},
		},
		{
			name:     "iss_sub with a token issuer set",
			settings: func(s *ssf.Transmitter) { s.TokenIssuer = "https://tokens.example.com" },
			set:      ssftest.SET{Event: ssf.EventAccountDisabled, Subject: user},
			want:     revocation.Watermark{Issuer: idp, Subject: "user-1", Before: iat},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOptions{settings: tc.settings})
			s := tc.set
			s.IssuedAt = iat
			if tc.rs256 {
				s.Key = f.tr.RS256
			}
			if r := f.push(t, s); r.Status != http.StatusAccepted || len(r.Body) != 0 {
				t.Fatalf("push: %d %q; want 202 with no body", r.Status, r.Body)
			}
			want := tc.want
			want.Source, want.Event, want.EventTime = "ssf:"+f.tr.Issuer, s.Event, iat
			got := f.rec.watermarks()
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Fatalf("watermarks %+v\nwant [%+v]", got, want)
			}
		})
	}
}

// The SSF verification event and events of unknown types are
// acknowledged, and revoke nothing.
func TestAcknowledgedEvents(t *testing.T) {
	t.Parallel()
	for _, event := range []string{
		ssf.EventVerification,
		"https://schemas.openid.net/secevent/caep/event-type/device-compliance-change",
		"urn:example:secevent:something-new",
	} {
		t.Run(event, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOptions{})
			s := ssftest.SET{Event: event, Subject: ssftest.Opaque("stream-1"), Payload: map[string]any{"state": "abc"}}
			if r := f.push(t, s); r.Status != http.StatusAccepted || len(r.Body) != 0 {
				t.Fatalf("push: %d %q; want 202", r.Status, r.Body)
			}
			if got := f.rec.watermarks(); len(got) != 0 {
				t.Fatalf("watermarks %+v; want none", got)
			}
		})
	}
}
