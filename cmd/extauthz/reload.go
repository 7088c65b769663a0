package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/logging"
)

// pollInterval is how often the config file is read for changes. Reading
// beats inotify here: a Kubernetes ConfigMap volume is updated by swapping
// a symlink, which file watches miss unless they watch the directory.
const pollInterval = 2 * time.Second

// reloader applies a changed config file to the running gateway: on
// SIGHUP, and when the file's content changes. A file that does not load
// is refused, logged and counted; the running config stays in force.
// Every load expands the file's ${NAME} references anew from the process
// environment, as the first load did. Without a file (the configuration
// came from the environment alone), a SIGHUP rebuilds it from the
// environment, through the same validation; there is no file to poll.
type reloader struct {
	app      *app
	path     string         // "": the environment
	levelVar *slog.LevelVar // nil: the level is not changed

	mu   sync.Mutex // one reload at a time
	last [sha256.Size]byte
}

// run reloads on SIGHUP and on change until ctx ends.
func (r *reloader) run(ctx context.Context) {
	if r.path != "" {
		if b, err := os.ReadFile(r.path); err == nil {
			r.last = sha256.Sum256(b)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if r.path != "" {
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.app.log.Info("SIGHUP: reloading the config", "file", r.source())
			_ = r.reload(ctx, true)
		case <-tick:
			_ = r.reload(ctx, false)
		}
	}
}

// source names where the config comes from, for the log.
func (r *reloader) source() string {
	if r.path == "" {
		return "(environment)"
	}
	return r.path
}

// load reads the config: the file, or the environment. Unless forced, an
// unchanged file (same bytes as the last attempt) gives nil, nil.
func (r *reloader) load(force bool) (*config.Config, error) {
	if r.path == "" {
		return configFromEnv()
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		if force {
			return nil, fmt.Errorf("reading %s: %w", r.path, err)
		}
		// A file briefly missing while it is being replaced is not a
		// failed reload; the next poll sees the new one.
		return nil, nil
	}
	sum := sha256.Sum256(b)
	if sum == r.last && !force {
		return nil, nil
	}
	r.last = sum
	return config.Parse(b)
}

// reload loads the file and applies it. Unless forced, an unchanged file
// (same bytes as the last attempt) is left alone.
func (r *reloader) reload(ctx context.Context, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := r.load(force)
	if err != nil {
		return r.refuse(err)
	}
	if cfg == nil {
		return nil
	}
	restart, err := r.app.apply(cfg)
	if err != nil {
		return r.refuse(err)
	}
	if r.levelVar != nil {
		lv, _ := logging.ParseLevel(cfg.Log.Level)
		r.levelVar.Set(lv)
	}
	r.app.tel.Metrics.Reload(true, len(restart) > 0)
	if len(restart) > 0 {
		r.app.log.Warn("config reloaded; some changed settings apply only after a restart", "file", r.source(), "restart_required", restart)
	} else {
		r.app.log.Info("config reloaded", "file", r.source())
	}
	for _, w := range config.Warnings(cfg) {
		r.app.log.Warn("config: "+w, "file", r.source())
	}
	return nil
}

func (r *reloader) refuse(err error) error {
	r.app.tel.Metrics.Reload(false, false)
	r.app.log.Error("config reload refused; the running config stays in force", "file", r.source(), "err", err.Error())
	return err
}

// apply swaps in what a reload may change — resources, rules, policies,
// scopes, authorization servers, token and upstream settings, the audit
// settings — and returns the changed settings that need a restart.
// Authorization servers whose settings did not change keep running with
// their fetched keys; changed and new ones start fresh; removed ones stop.
func (a *app) apply(cfg *config.Config) ([]string, error) {
	restart := restartRequired(a.cfg, cfg)
	a.issuersMu.Lock()
	defer a.issuersMu.Unlock()
	for _, iss := range loginIssuers(a.cfg) {
		if old, ok := a.issuers[iss]; ok && !specListed(cfg, iss, old.spec) {
			return nil, fmt.Errorf("authorization server %s signs users in (resources[].login): its settings change only with a restart", iss)
		}
	}
	fresh, err := buildIssuers(cfg, a.log, a.tel, a.clock)
	if err != nil {
		return nil, err
	}
	merged := make(map[string]*issuerParts, len(fresh))
	var started []*issuerParts
	for iss, p := range fresh {
		if old, ok := a.issuers[iss]; ok && reflect.DeepEqual(old.spec, p.spec) {
			merged[iss] = old
			continue
		}
		merged[iss] = p
		started = append(started, p)
	}
	verifier, err := newVerifier(cfg, merged, a.clock)
	if err != nil {
		return nil, err
	}
	p, err := authz.NewPolicy(cfg)
	if err != nil {
		return nil, err
	}
	loaded := a.status.describe(cfg) // the digest, before the swap: nothing slow after it
	for _, part := range started {
		a.startIssuer(part)
	}
	a.engine.Swap(p, verifier)
	a.status.configLoaded(loaded)
	for iss, old := range a.issuers {
		if merged[iss] != old {
			old.stop()
			a.tel.Metrics.ForgetIssuer(iss)
		}
	}
	a.issuers = merged
	registerKeyAges(a.tel, merged)
	a.audit.Set(cfg.Log.AuditEnabled(), cfg.Log.Audit.AllowSampleRate)
	return restart, nil
}

// restartRequired names the changed settings that a running gateway
// cannot apply: listeners, the cache and Redis, gRPC server options,
// the Go runtime's tuning, the admin token, the browser login, the
// upstream credentials, the MCP body limit of the HTTP mode, the log
// format, revocation's settings, and the external processor's (it is
// registered, or not, on the gRPC server at start).
func restartRequired(old, cur *config.Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("listen", old.Listen, cur.Listen)
	check("cache", old.Cache, cur.Cache)
	check("admin", old.Admin, cur.Admin)
	check("grpc", old.GRPC, cur.GRPC)
	check("runtime", old.Runtime, cur.Runtime)
	check("login", old.Login, cur.Login)
	check("mcp.max_body_bytes", old.MCP.MaxBodyBytes, cur.MCP.MaxBodyBytes)
	check("log.format", old.Log.Format, cur.Log.Format)
	check("resources[].login", resourceLogins(old), resourceLogins(cur))
	check("resources[].upstream_token", upstreamTokens(old), upstreamTokens(cur))
	check("upstream.token_encryption_key", old.Upstream.TokenEncryptionKey, cur.Upstream.TokenEncryptionKey)
	check("upstream.token_cache_entries", old.Upstream.TokenCacheEntries, cur.Upstream.TokenCacheEntries)
	check("dpop", old.DPoP, cur.DPoP)
	check("revocation", old.Revocation, cur.Revocation)
	check("ssf", old.SSF, cur.SSF)
	check("ext_proc", old.ExtProc, cur.ExtProc)
	sort.Strings(out)
	return out
}

func resourceLogins(c *config.Config) map[string]config.ResourceLogin {
	m := map[string]config.ResourceLogin{}
	for _, r := range c.Resources {
		if r.Login.Enabled {
			m[r.Name] = r.Login
		}
	}
	return m
}

// upstreamTokens are the resources' upstream_token blocks, by resource:
// the minters are built at start.
func upstreamTokens(c *config.Config) map[string]config.UpstreamToken {
	m := map[string]config.UpstreamToken{}
	for _, r := range c.Resources {
		if r.UpstreamToken.Mode != "" {
			m[r.Name] = r.UpstreamToken
		}
	}
	return m
}

// loginIssuers are the issuers the browser login signs in with.
func loginIssuers(c *config.Config) []string {
	var out []string
	for _, r := range c.Resources {
		if r.Login.Enabled {
			out = append(out, r.Login.Issuer)
		}
	}
	return out
}

// specListed reports whether cfg lists issuer with the same settings
// (secrets aside: they are compared when the parts are rebuilt).
func specListed(cfg *config.Config, issuer string, spec issuerSpec) bool {
	for _, r := range cfg.Resources {
		for _, as := range r.AuthorizationServers {
			if as.Issuer == issuer {
				return reflect.DeepEqual(as, spec.Server) && cfg.JWKS == spec.JWKS && cfg.Tokens.Leeway == spec.Leeway
			}
		}
	}
	return false
}
