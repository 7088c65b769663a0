package config

import (
	"fmt"
	"time"
)

// maxDPoPMaxAge bounds resources[].dpop.max_age: a proof is a per-request
// credential, and every proof id is remembered this long.
const maxDPoPMaxAge = 10 * time.Minute

// validateDPoP checks every resource's dpop block and the settings they
// share.
func (c *Config) validateDPoP(ch *checker) {
	validateSecret(ch, "dpop.nonce_key", c.DPoP.NonceKey)
	positive(ch, "dpop.nonce_lifetime", c.DPoP.NonceLifetime)
	if c.DPoP.Leeway < 0 || c.DPoP.Leeway.D() > time.Minute {
		ch.add("dpop.leeway", "must be between 0s and 1m")
	}
	nonce := false
	for i := range c.Resources {
		d := &c.Resources[i].DPoP
		p := fmt.Sprintf("resources[%d].dpop", i)
		switch {
		case d.MaxAge <= 0:
			ch.add(p+".max_age", msgPositive)
		case d.MaxAge.D() > maxDPoPMaxAge:
			ch.add(p+".max_age", "must be at most 10m (a proof is for one request)")
		}
		if d.HTUOrigin != "" {
			for _, msg := range checkWebURL(d.HTUOrigin, urlOrigin) {
				ch.add(p+".htu_origin", "%s", msg)
			}
		}
		if d.Mode == DPoPOff && (d.Nonce || d.HTUOrigin != "") {
			ch.add(p, "sets nonce or htu_origin with mode off (they apply to DPoP requests only)")
		}
		nonce = nonce || (d.Nonce && d.Mode != DPoPOff)
	}
	if nonce && c.DPoP.NonceKey.IsZero() {
		ch.add("dpop.nonce_key", "is required when a resource sets dpop.nonce (at least 32 bytes, the same on every replica)")
	}
}
