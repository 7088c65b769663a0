package config

import "slices"

// KeptClaims are the claims of as's tokens that verification keeps for
// later: its keep_claims, and the claims the ssf transmitters compare
// subject identifiers with (ssf.transmitters[].subject_claims) when they
// are not sub, sid or client_id, which every token's verdict holds anyway,
// for the transmitters whose token_issuer is as's issuer or that name
// none. A revocation by email must find the email in the cached token:
// without it, the event would be acknowledged and revoke nothing.
func (c *Config) KeptClaims(as AuthorizationServer) []string {
	out := as.KeepClaims
	for _, t := range c.SSF.Transmitters {
		if t.TokenIssuer != "" && t.TokenIssuer != as.Issuer {
			continue
		}
		for _, claim := range []string{t.SubjectClaims.Email, t.SubjectClaims.Opaque} {
			switch claim {
			case "", "sub", "sid", "client_id":
				continue
			}
			if !slices.Contains(out, claim) {
				out = append(slices.Clip(out), claim)
			}
		}
	}
	return out
}
