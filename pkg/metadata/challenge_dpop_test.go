package metadata

import "testing"

// DPoP challenges (RFC 9449 §7.1) and the two schemes side by side (§7.2,
// Figures 17 and 18), read back as a client would.
func TestDPoPChallenges(t *testing.T) {
	dpop := Challenge{Scheme: SchemeDPoP, Error: "invalid_dpop_proof", ErrorDescription: "bad proof", Algs: "ES256 PS256"}
	if got, want := dpop.String(), `DPoP error="invalid_dpop_proof", error_description="bad proof", algs="ES256 PS256"`; got != want {
		t.Errorf("String = %s\nwant %s", got, want)
	}
	both := Challenges(Challenge{ResourceMetadata: "https://r/.well-known/oauth-protected-resource/mcp"}, Challenge{Scheme: SchemeDPoP, Algs: "ES256"})
	if want := `Bearer resource_metadata="https://r/.well-known/oauth-protected-resource/mcp", DPoP algs="ES256"`; both != want {
		t.Errorf("Challenges = %s\nwant %s", both, want)
	}
	parsed, err := ParseChallenges(both)
	if err != nil || len(parsed) != 2 || parsed[0].Scheme != "Bearer" || parsed[1].Scheme != "DPoP" || parsed[1].Params["algs"] != "ES256" ||
		parsed[0].Params["resource_metadata"] == "" {
		t.Errorf("ParseChallenges = %+v, %v", parsed, err)
	}
	if got := Challenges(Challenge{}, Challenge{Scheme: SchemeDPoP, Algs: "ES256 PS256"}); got != `Bearer, DPoP algs="ES256 PS256"` {
		t.Errorf("no credential: %s", got)
	}
}
