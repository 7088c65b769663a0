package config

import (
	"slices"
	"testing"
)

// The claims an SSF transmitter compares subjects with are kept from the
// tokens of the issuer it names (or of every issuer when it names none),
// once each, besides keep_claims; sub, sid and client_id are kept anyway.
func TestKeptClaims(t *testing.T) {
	a := AuthorizationServer{Issuer: "https://a.example.com", KeepClaims: []string{"roles"}}
	b := AuthorizationServer{Issuer: "https://b.example.com"}
	c := &Config{SSF: SSF{Transmitters: []SSFTransmitter{
		{TokenIssuer: a.Issuer, SubjectClaims: SSFSubjectClaims{Email: "upn", Opaque: "sub"}},
		{SubjectClaims: SSFSubjectClaims{Email: "email", Opaque: "oid"}},
		{TokenIssuer: a.Issuer, SubjectClaims: SSFSubjectClaims{Email: "email", Opaque: "sid"}},
	}}}
	if got, want := c.KeptClaims(a), []string{"roles", "upn", "email", "oid"}; !slices.Equal(got, want) {
		t.Errorf("issuer a keeps %v, want %v", got, want)
	}
	if got, want := c.KeptClaims(b), []string{"email", "oid"}; !slices.Equal(got, want) {
		t.Errorf("issuer b keeps %v, want %v", got, want)
	}
	if a.KeepClaims[0] != "roles" || len(a.KeepClaims) != 1 {
		t.Errorf("keep_claims itself changed: %v", a.KeepClaims)
	}
	if got := (&Config{}).KeptClaims(a); !slices.Equal(got, []string{"roles"}) {
		t.Errorf("without ssf: %v", got)
	}
}
