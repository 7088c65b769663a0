package ssf

import (
	"fmt"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/jwks"
)

// OptionsFromConfig reads the policy file's ssf section (and the jwks
// tuning the transmitters' key sets share with the issuers') into
// Options, resolving each push token; an error names the key path. The
// caller sets what the file does not hold: Revoker, Replay (a RedisReplay
// when Redis is configured), HTTPClient, Logger, Meter, Now, OnJWKSFetch.
// The receiver is off when c lists no transmitter: ok is false.
func OptionsFromConfig(c *config.Config) (o Options, ok bool, err error) {
	s := c.SSF
	if len(s.Transmitters) == 0 {
		return Options{}, false, nil
	}
	o = Options{
		Audience: s.Audience,
		MaxAge:   s.MaxAge.D(),
		Leeway:   s.Leeway.D(),
		MaxBytes: int64(s.MaxBytes),
		JWKS: jwks.Options{
			MinRefresh:         c.JWKS.MinRefresh.D(),
			MaxRefresh:         c.JWKS.MaxRefresh.D(),
			UnknownKIDInterval: c.JWKS.UnknownKIDInterval.D(),
			Timeout:            c.JWKS.Timeout.D(),
		},
	}
	if o.Leeway == 0 {
		o.Leeway = -1 // written as 0s: none, not the default
	}
	for i, t := range s.Transmitters {
		tr := Transmitter{
			Issuer:           t.Issuer,
			JWKSURI:          t.JWKSURI,
			ConfigurationURL: t.ConfigurationURL,
			Algorithms:       t.Algorithms,
			Subjects:         SubjectClaims{Email: t.SubjectClaims.Email, Opaque: t.SubjectClaims.Opaque},
			TokenIssuer:      t.TokenIssuer,
		}
		if !t.PushToken.IsZero() {
			if tr.PushToken, err = t.PushToken.Resolve(); err != nil {
				return Options{}, false, fmt.Errorf("ssf.transmitters[%d].push_token: %w", i, err)
			}
		}
		if p := t.Poll; p.Endpoint != "" {
			tr.Poll = &Poll{Endpoint: p.Endpoint, Interval: p.Interval.D(), MaxEvents: p.MaxEvents}
			if !p.Token.IsZero() {
				if tr.Poll.Token, err = p.Token.Resolve(); err != nil {
					return Options{}, false, fmt.Errorf("ssf.transmitters[%d].poll.token: %w", i, err)
				}
			}
		}
		o.Transmitters = append(o.Transmitters, tr)
	}
	return o, true, nil
}
