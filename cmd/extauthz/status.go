package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/pkg/config"
)

// The admin status page (GET / and GET /status on the admin listener):
// one server-rendered page for an operator who opens the admin port in a
// browser, with the figures a dashboard would show for this one replica —
// version and config digest, each resource with its authorization servers
// and their keys, the cache tiers, Redis, the last config reload and the
// recent denials by reason. Its figures are read from the same registry
// /metrics serves (telemetry.Gather), so the page and Prometheus never
// disagree; it shows no token, subject or session, since no metric holds one.

const (
	// statusWindow is how far back "recent denials" reach.
	statusWindow = 15 * time.Minute
	// statusMarkEvery is how often the denial counts are noted, to
	// subtract the ones from before the window.
	statusMarkEvery = time.Minute
	// statusPingBudget bounds the page's own Redis PING.
	statusPingBudget = time.Second
)

// statusPage serves the page. It is built with the app and told of every
// configuration the app loads after that.
type statusPage struct {
	a       *app
	started time.Time
	host    string
	source  string // where the configuration comes from, for the page

	loaded atomic.Pointer[loadedConfig]

	mu    sync.Mutex
	marks []denialMark // oldest first, none older than statusWindow (but the baseline)
}

// loadedConfig is the configuration in force and its digest.
type loadedConfig struct {
	cfg    *config.Config
	digest string
	at     time.Time
}

// denialMark is the denial counts by reason at one moment.
type denialMark struct {
	at     time.Time
	counts map[string]float64
}

func newStatusPage(a *app, o appOptions) *statusPage {
	p := &statusPage{a: a, started: a.clock()}
	switch {
	case o.configPath != "":
		p.source = o.configPath
	case o.fromEnv:
		p.source = "the environment (EXTAUTHZ_*)"
	default:
		p.source = "built by the command (extauthz dev)"
	}
	p.host, _ = os.Hostname()
	// Nothing is decided before the app runs: the first mark is zero.
	p.marks = []denialMark{{at: p.started, counts: map[string]float64{}}}
	p.configLoaded(p.describe(a.cfg))
	return p
}

// describe is what the page will say of cfg once it is in force.
func (p *statusPage) describe(cfg *config.Config) *loadedConfig {
	return &loadedConfig{cfg: cfg, digest: configDigest(cfg)}
}

// configLoaded records the configuration now in force.
func (p *statusPage) configLoaded(lc *loadedConfig) {
	lc.at = p.a.clock()
	p.loaded.Store(lc)
}

// configDigest is the hex SHA-256 of the effective configuration (defaults
// applied) as YAML: replicas that show the same digest run the same
// policy, whatever the file's comments and layout. Secrets are references
// (an environment variable's or a file's name), never their values.
func configDigest(cfg *config.Config) string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(cfg); err != nil {
		return "unavailable: " + err.Error()
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// run notes the denial counts every statusMarkEvery until ctx ends.
func (p *statusPage) run(ctx context.Context) {
	t := time.NewTicker(statusMarkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mfs, err := p.a.tel.Gather()
		if err != nil {
			continue
		}
		p.mark(p.a.clock(), metricSet(mfs).by("extauthz_check_decisions_total", "reason", map[string]string{"decision": "deny"}))
	}
}

// mark adds a mark and drops those the window no longer needs: the
// baseline is the oldest mark within the window.
func (p *statusPage) mark(at time.Time, counts map[string]float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marks = append(p.marks, denialMark{at: at, counts: counts})
	for len(p.marks) > 1 && at.Sub(p.marks[0].at) > statusWindow {
		p.marks = p.marks[1:]
	}
}

// baseline is the mark that recent denials are counted from.
func (p *statusPage) baseline() denialMark {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.marks[0]
}

// ServeHTTP renders the page.
func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	view, err := p.view(r.Context())
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if err != nil {
		http.Error(w, "status unavailable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := statusTemplate.Execute(&b, view); err != nil {
		http.Error(w, "status unavailable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// Nothing but the page's own stylesheet: no script, no image, no
	// frame, no form, nothing fetched from anywhere.
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// The page's view model: every figure already formatted.
type (
	statusView struct {
		Now, Host, Version, Started, Uptime string
		ConfigDigest, ConfigSource          string
		Reload                              reloadView
		Resources                           []resourceView
		Issuers                             []issuerView
		Decisions                           decisionsView
		Cache                               cacheView
		Redis                               redisView
		Revocation                          revocationView
	}
	reloadView struct {
		OK                        bool
		LastSuccess, LoadedAt     string
		Successes, Failures       int64
		RestartRequired           bool
		LastSuccessAgo, LoadedAgo string
	}
	resourceView struct {
		Name, URI, Scopes string
		Issuers           []string
	}
	issuerView struct {
		Issuer, Mode, State string
		Ready               bool
		KeysAge, KeysAt     string
		KeyCount            int
		KeyIDs              []string
		LastError           string
		Refreshes, Failures int64
		IntrospectionErrors int64
		Introspects, JWT    bool
	}
	decisionsView struct {
		Allowed, Denied int64
		Since, SinceAgo string
		Recent          []reasonCount
		RecentTotal     int64
		Total           []reasonCount
	}
	reasonCount struct {
		Reason string
		Count  int64
	}
	cacheView struct {
		Tiers     []tierView
		Entries   []reasonCount
		Evictions int64
		MaxValid  int
	}
	tierView struct {
		Tier, Ratio  string
		Hits, Misses int64
	}
	redisView struct {
		Configured  bool
		Mode        string
		CircuitOpen bool
		Ping        string
		PingOK      bool
		Errors      []reasonCount
		ErrorsTotal int64
	}
	revocationView struct {
		Watermarks int
		Shared     bool
		Made       int64
		Refused    int64
	}
)

func (p *statusPage) view(ctx context.Context) (*statusView, error) {
	mfs, err := p.a.tel.Gather()
	if err != nil {
		return nil, err
	}
	m := metricSet(mfs)
	now := p.a.clock()
	lc := p.loaded.Load()
	v := &statusView{
		Now: stamp(now), Host: p.host, Version: versionString(),
		Started: stamp(p.started), Uptime: ago(now, p.started),
		ConfigDigest: lc.digest, ConfigSource: p.source,
	}

	// The last reload, from the same gauges an alert reads.
	lastOK := time.Unix(int64(m.sum("extauthz_config_last_reload_success_timestamp_seconds", nil)), 0)
	v.Reload = reloadView{
		OK:          m.sum("extauthz_config_last_reload_successful", nil) == 1,
		LastSuccess: stamp(lastOK), LastSuccessAgo: ago(now, lastOK),
		LoadedAt: stamp(lc.at), LoadedAgo: ago(now, lc.at),
		Successes:       count(m.sum("extauthz_config_reloads_total", map[string]string{"result": "success"})),
		Failures:        count(m.sum("extauthz_config_reloads_total", map[string]string{"result": "failure"})),
		RestartRequired: m.sum("extauthz_config_restart_required", nil) == 1,
	}

	// Resources and the authorization servers they trust.
	modes := map[string]config.AuthorizationServer{}
	for _, r := range lc.cfg.Resources {
		rv := resourceView{Name: r.Name, URI: r.Resource, Scopes: strings.Join(r.RequiredScopes, " ")}
		for _, as := range r.AuthorizationServers {
			rv.Issuers = append(rv.Issuers, as.Issuer)
			modes[as.Issuer] = as
		}
		v.Resources = append(v.Resources, rv)
	}
	v.Issuers = p.issuers(m, modes, now)

	// Decisions: totals since start, and the denials by reason since the
	// baseline mark.
	v.Decisions.Allowed = count(m.sum("extauthz_check_decisions_total", map[string]string{"decision": "allow"}))
	v.Decisions.Denied = count(m.sum("extauthz_check_decisions_total", map[string]string{"decision": "deny"}))
	denials := m.by("extauthz_check_decisions_total", "reason", map[string]string{"decision": "deny"})
	base := p.baseline()
	v.Decisions.Since, v.Decisions.SinceAgo = stamp(base.at), ago(now, base.at)
	recent := map[string]float64{}
	for reason, n := range denials {
		if d := n - base.counts[reason]; d > 0 {
			recent[reason] = d
		}
	}
	v.Decisions.Recent = sortedCounts(recent)
	for _, rc := range v.Decisions.Recent {
		v.Decisions.RecentTotal += rc.Count
	}
	v.Decisions.Total = sortedCounts(denials)

	// The verdict cache's tiers.
	for _, tier := range []string{"local", "redis"} {
		hits := count(m.sum("extauthz_cache_lookups_total", map[string]string{"tier": tier, "result": "hit"}))
		misses := count(m.sum("extauthz_cache_lookups_total", map[string]string{"tier": tier, "result": "miss"}))
		if tier == "redis" && lc.cfg.Cache.RedisMode() == "" {
			continue
		}
		v.Cache.Tiers = append(v.Cache.Tiers, tierView{Tier: tier, Hits: hits, Misses: misses, Ratio: ratio(hits, hits+misses)})
	}
	v.Cache.Entries = sortedCounts(m.by("extauthz_cache_entries", "kind", nil))
	v.Cache.Evictions = count(m.sum("extauthz_cache_evictions_total", nil))
	v.Cache.MaxValid = p.a.cfg.Cache.MaxEntries

	// Redis, as the cache sees it and as it answers now.
	v.Redis = redisView{
		Configured:  p.a.redis != nil,
		Mode:        p.a.cfg.Cache.RedisMode(),
		CircuitOpen: m.sum("extauthz_redis_circuit_open", nil) == 1,
		Errors:      sortedCounts(m.by("extauthz_redis_errors_total", "op", nil)),
	}
	for _, e := range v.Redis.Errors {
		v.Redis.ErrorsTotal += e.Count
	}
	if p.a.redis != nil {
		pctx, cancel := context.WithTimeout(ctx, statusPingBudget)
		began := time.Now()
		err := p.a.redis.Ping(pctx).Err()
		took := time.Since(began)
		cancel()
		if err == nil {
			v.Redis.PingOK = true
			v.Redis.Ping = fmt.Sprintf("answered in %s (a Check waits at most %s)", roundDuration(took), p.a.cfg.Cache.Redis.Timeout.D())
		} else {
			v.Redis.Ping = "no answer within " + statusPingBudget.String() + ": " + redisErrorKind(err)
		}
	}

	v.Revocation = revocationView{
		Watermarks: p.a.revoker.Len(),
		Shared:     p.a.revoker.Shared(),
		Made:       count(m.sum("extauthz_revocations_total", nil)),
		Refused:    count(m.sum("extauthz_revocation_tokens_refused_total", nil)),
	}
	return v, nil
}

// issuers describes every authorization server the app runs parts for.
func (p *statusPage) issuers(m metricSet, servers map[string]config.AuthorizationServer, now time.Time) []issuerView {
	p.a.issuersMu.Lock()
	defer p.a.issuersMu.Unlock()
	var out []issuerView
	for iss, parts := range p.a.issuers {
		as := servers[iss]
		iv := issuerView{
			Issuer: iss, Mode: as.TokenMode, Ready: parts.ready(),
			Introspects: as.Introspects(), JWT: parts.keys != nil,
			Refreshes:           count(m.sum("extauthz_jwks_refreshes_total", map[string]string{"issuer": iss, "result": "success"})),
			Failures:            count(m.sum("extauthz_jwks_refreshes_total", map[string]string{"issuer": iss, "result": "error"})),
			IntrospectionErrors: count(m.sum("extauthz_introspection_errors_total", map[string]string{"issuer": iss})),
		}
		if iv.Mode == "" {
			iv.Mode = config.TokenModeJWT
		}
		if parts.keys != nil {
			st := parts.keys.Status()
			iv.KeyCount, iv.KeyIDs = st.Keys, st.KeyIDs
			if !st.LastSuccess.IsZero() {
				iv.KeysAt, iv.KeysAge = stamp(st.LastSuccess), ago(now, st.LastSuccess)
			}
			if st.LastError != nil {
				iv.LastError = st.LastError.Error()
			}
		}
		switch {
		case !iv.Ready:
			iv.State = "not ready: its tokens get 503"
		case iv.LastError != "":
			iv.State = "serving the last good keys; the last fetch failed"
		default:
			iv.State = "ready"
		}
		out = append(out, iv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Issuer < out[j].Issuer })
	return out
}

// metricSet reads gathered metric families.
type metricSet []*dto.MetricFamily

// sum adds up the samples of name whose labels include want (a
// histogram's count, a counter's or gauge's value).
func (s metricSet) sum(name string, want map[string]string) float64 {
	var total float64
	s.each(name, want, func(_ *dto.Metric, v float64) { total += v })
	return total
}

// by sums the samples of name whose labels include want, by label.
func (s metricSet) by(name, label string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	s.each(name, want, func(m *dto.Metric, v float64) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += v
			}
		}
	})
	return out
}

func (s metricSet) each(name string, want map[string]string, f func(*dto.Metric, float64)) {
	for _, mf := range s {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				f(m, m.GetCounter().GetValue())
			case m.Gauge != nil:
				f(m, m.GetGauge().GetValue())
			case m.Histogram != nil:
				f(m, float64(m.GetHistogram().GetSampleCount()))
			}
		}
	}
}

func count(f float64) int64 {
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	return int64(math.Round(f))
}

func sortedCounts(m map[string]float64) []reasonCount {
	out := make([]reasonCount, 0, len(m))
	for k, v := range m {
		if n := count(v); n > 0 {
			out = append(out, reasonCount{k, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

func ratio(part, whole int64) string {
	if whole == 0 {
		return "no lookups yet"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(part)/float64(whole))
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// ago is how long before now t was, to the second.
func ago(now, t time.Time) string {
	d := max(now.Sub(t), 0).Round(time.Second)
	return d.String() + " ago"
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// redisErrorKind names a failed PING without its text (which may name
// addresses and the user).
func redisErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.As(err, &ne):
		return "network error"
	}
	return "failed"
}

// statusCSS is the page's only style; the CSP names its digest.
const statusCSS = `
:root{color-scheme:light;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232b;background:#f4f6f8}
body{margin:0 auto;max-width:1180px;padding:20px 24px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:0 0 10px}
.sub{color:#5a6470;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:14px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 16px}
section.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px 4px 0;vertical-align:top;border-bottom:1px solid #eef1f4}
th{color:#5a6470;font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f0f2f5;border-radius:4px;padding:1px 4px;word-break:break-all}
.ok{color:#17733a;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.big{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}
.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px}
.kv dt{color:#5a6470}.kv dd{margin:0;overflow-wrap:anywhere}
td{overflow-wrap:anywhere}
.muted{color:#5a6470}
h2.gap{margin-top:14px}
`

var statusCSP = func() string {
	sum := sha256.Sum256([]byte(statusCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var statusTemplate = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>extauthz status{{with .Host}} · {{.}}{{end}}</title>
<style>` + statusCSS + `</style></head>
<body>
<h1>extauthz status</h1>
<div class="sub">{{with .Host}}<b>{{.}}</b> · {{end}}version <code id="version">{{.Version}}</code> · started {{.Started}} ({{.Uptime}}) · page at {{.Now}}, refreshed every 30 s</div>
<div class="grid">

<section id="config">
<h2>Configuration</h2>
<dl class="kv">
<dt>digest</dt><dd><code id="config-digest" title="SHA-256 of the effective configuration, defaults applied">{{.ConfigDigest}}</code></dd>
<dt>from</dt><dd>{{.ConfigSource}}</dd>
<dt>in force since</dt><dd>{{.Reload.LoadedAt}} ({{.Reload.LoadedAgo}})</dd>
<dt>last load</dt><dd id="reload-state">{{if .Reload.OK}}<span class="ok">succeeded</span>{{else}}<span class="bad">refused: the previous configuration stays in force (see the log)</span>{{end}}, last success {{.Reload.LastSuccess}} ({{.Reload.LastSuccessAgo}})</dd>
<dt>reloads</dt><dd><span id="reloads-ok">{{.Reload.Successes}}</span> succeeded, <span id="reloads-failed">{{.Reload.Failures}}</span> refused{{if .Reload.RestartRequired}} · <span class="warn">some changed settings apply only after a restart</span>{{end}}</dd>
</dl>
</section>

<section id="decisions">
<h2>Decisions since start</h2>
<div><span class="big ok" id="allowed">{{.Decisions.Allowed}}</span> allowed &nbsp; <span class="big bad" id="denied">{{.Decisions.Denied}}</span> denied</div>
<h2 class="gap">Denials by reason, since {{.Decisions.Since}} ({{.Decisions.SinceAgo}})</h2>
{{if .Decisions.Recent}}<table id="recent-denials"><tr><th>reason</th><th class="n">count</th></tr>
{{range .Decisions.Recent}}<tr><td><code>{{.Reason}}</code></td><td class="n">{{.Count}}</td></tr>
{{end}}</table>{{else}}<p class="muted" id="recent-denials">none</p>{{end}}
</section>

<section id="cache">
<h2>Verdict cache</h2>
<table><tr><th>tier</th><th class="n">hit ratio</th><th class="n">hits</th><th class="n">misses</th></tr>
{{range .Cache.Tiers}}<tr class="tier" id="tier-{{.Tier}}"><td>{{.Tier}}</td><td class="n">{{.Ratio}}</td><td class="n">{{.Hits}}</td><td class="n">{{.Misses}}</td></tr>
{{end}}</table>
<p>Held in process: {{range $i, $e := .Cache.Entries}}{{if $i}}, {{end}}{{$e.Count}} {{$e.Reason}}{{else}}nothing yet{{end}} (room for {{.Cache.MaxValid}} valid); {{.Cache.Evictions}} evicted.</p>
</section>

<section id="resources" class="wide">
<h2>Resources</h2>
<table><tr><th>name</th><th>resource</th><th>required scopes</th><th>authorization servers</th></tr>
{{range .Resources}}<tr><td><code>{{.Name}}</code></td><td><code>{{.URI}}</code></td><td>{{.Scopes}}</td><td>{{range .Issuers}}<code>{{.}}</code><br>{{end}}</td></tr>
{{end}}</table>
</section>

<section id="issuers" class="wide">
<h2>Authorization servers</h2>
<table><tr><th>issuer</th><th>tokens</th><th>state</th><th>key set age</th><th>key ids</th><th class="n">fetches ok / failed</th><th class="n">introspection errors</th></tr>
{{range .Issuers}}<tr class="issuer"><td><code>{{.Issuer}}</code></td><td>{{.Mode}}</td>
<td>{{if not .Ready}}<span class="bad">{{.State}}</span>{{else if .LastError}}<span class="warn">{{.State}}</span><br><code>{{.LastError}}</code>{{else}}<span class="ok">{{.State}}</span>{{end}}</td>
<td class="keys-age">{{if .JWT}}{{if .KeysAt}}{{.KeysAge}}<br><span class="muted">{{.KeysAt}}</span>{{else}}<span class="bad">never fetched</span>{{end}}{{else}}<span class="muted">no keys (introspection)</span>{{end}}</td>
<td class="kids">{{if .JWT}}{{range .KeyIDs}}<code>{{.}}</code> {{end}}<span class="muted">({{.KeyCount}} usable)</span>{{end}}</td>
<td class="n">{{if .JWT}}{{.Refreshes}} / {{.Failures}}{{end}}</td>
<td class="n">{{if .Introspects}}{{.IntrospectionErrors}}{{end}}</td></tr>
{{end}}</table>
</section>


<section id="redis">
<h2>Redis</h2>
{{if .Redis.Configured}}<dl class="kv">
<dt>mode</dt><dd>{{.Redis.Mode}}</dd>
<dt>circuit</dt><dd id="redis-circuit">{{if .Redis.CircuitOpen}}<span class="bad">open: Redis is skipped, tokens are verified here</span>{{else}}<span class="ok">closed</span>{{end}}</dd>
<dt>PING</dt><dd id="redis-ping">{{if .Redis.PingOK}}<span class="ok">{{.Redis.Ping}}</span>{{else}}<span class="bad">{{.Redis.Ping}}</span>{{end}}</dd>
<dt>errors</dt><dd>{{.Redis.ErrorsTotal}}{{range .Redis.Errors}} · {{.Reason}} {{.Count}}{{end}}</dd>
</dl>{{else}}<p class="muted" id="redis-ping">not configured: the cache is in process only</p>{{end}}
</section>

<section id="revocation">
<h2>Revocation</h2>
<dl class="kv">
<dt>watermarks held</dt><dd id="watermarks">{{.Revocation.Watermarks}}</dd>
<dt>shared</dt><dd>{{if .Revocation.Shared}}through Redis with every replica{{else}}<span class="warn">no Redis: this replica only</span>{{end}}</dd>
<dt>made here</dt><dd>{{.Revocation.Made}}</dd>
<dt>tokens refused by them</dt><dd>{{.Revocation.Refused}}</dd>
</dl>
</section>

</div>
<p class="muted">The same figures are at <code>/metrics</code>. No token, subject or session is ever shown here.</p>
</body></html>
`))
