package main

import (
	"net/http"
	"time"

	"github.com/extauthz/extauthz/pkg/ssf"
)

// newSSFReceiver builds the Shared Signals receiver when ssf.transmitters
// are configured (nil otherwise): SETs pushed to ssf.path become
// revocation watermarks through a.revoker, their jti remembered in Redis
// when there is one, so that a SET replayed to another replica is caught.
// Its transmitters' keys are kept fresh in the background.
func newSSFReceiver(a *app, now func() time.Time) (*ssf.Receiver, error) {
	o, ok, err := ssf.OptionsFromConfig(a.cfg)
	if err != nil || !ok {
		return nil, err
	}
	o.Revoker, o.Now = a.revoker, now
	o.Logger = a.log.With("component", "ssf")
	o.Meter = a.tel.MeterProvider().Meter("github.com/extauthz/extauthz")
	o.HTTPClient = &http.Client{Timeout: a.cfg.JWKS.Timeout.D(), Transport: traced(a.tel, http.DefaultTransport)}
	o.OnJWKSFetch = a.tel.Metrics.JWKSFetch
	if a.redis != nil {
		o.Replay = ssf.NewRedisReplay(a.redis)
	}
	recv, err := ssf.New(o)
	if err != nil {
		return nil, err
	}
	a.background = append(a.background, recv.Run)
	return recv, nil
}
