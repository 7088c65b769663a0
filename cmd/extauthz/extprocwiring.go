package main

import (
	"github.com/extauthz/extauthz/pkg/extproc"
)

// registerExtProc serves Envoy's external processing API on the gRPC
// listener when ext_proc.enabled is set: listings filtered by the caller's
// scopes (docs/list-filtering.md). It reads the engine's policy at each
// listing, so a reload applies to the next one; ext_proc.* itself is read
// at start.
func registerExtProc(a *app) error {
	if !a.cfg.ExtProc.Enabled {
		return nil
	}
	srv, err := extproc.New(a.engine, extproc.Options{
		MaxBodyBytes: a.cfg.ExtProc.MaxBodyBytes,
		Meter:        a.tel.MeterProvider().Meter("github.com/extauthz/extauthz"),
		Log:          a.log.With("component", "extproc"),
		Now:          a.clock,
	})
	if err != nil {
		return err
	}
	srv.Register(a.grpc)
	return nil
}
