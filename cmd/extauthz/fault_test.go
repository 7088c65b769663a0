package main

// Fault tests under load (issue #11, point 3). Each one sends Checks from a
// few goroutines through a real gRPC client to a gateway on 127.0.0.1 for a
// few seconds, breaks one of the gateway's dependencies in the middle —
// the issuer's JWKS endpoint, the introspection endpoint, Redis, the
// issuer's signing key — and judges every answer by what the documentation says
// the gateway does at that moment. Answers are counted per token class and
// phase, and two counts must be zero:
//
//   - wrongly allowed: a token that must be denied was allowed;
//   - valid denied: a valid token was denied outside the documented windows
//     (each class names its window per phase, if it has one).
//
// A third count, unexpected, is a token denied as it should be but with a
// status other than the documented one (a 401 where the documentation promises a
// 503, or a gRPC error where it promises an answer); it must be zero too.
// Answers the documentation promises nothing about are counted as noted: logged,
// not judged.
//
// A phase lasts a fixed time and until every class active in it has been
// answered a few times, so a slow machine makes a test longer, never red:
// there is no timing assertion here.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// faultWorkers is how many goroutines send Checks: enough for concurrent
// misses, joined verifications and in-flight fetches on a 2-core machine.
const faultWorkers = 4

// pastUnknownKIDInterval moves the gateway's clock past the default
// jwks.unknown_kid_min_interval (10s) since its last fetch, so that the next
// unknown kid is allowed to trigger a refetch. The tests drive the gateway's
// clock instead of sleeping through the interval.
const pastUnknownKIDInterval = 11 * time.Second

// faultGateway is one gateway started in process from a YAML policy, with a
// gRPC client on its Check listener.
type faultGateway struct {
	app    *app
	client authv3.AuthorizationClient
	admin  string // the admin listener's address
	// stop shuts the gateway down, waits for run to return and closes the
	// client connection. It is idempotent, and also runs at cleanup.
	stop func()
}

// startFaultGateway runs a gateway with the gRPC and admin listeners on
// free loopback ports, the audit trail off (the load would only format
// lines for io.Discard) and policy appended, and waits until it is ready.
func startFaultGateway(t *testing.T, policy string, o appOptions) *faultGateway {
	t.Helper()
	cfg, err := config.Parse([]byte(`
listen: {grpc: "127.0.0.1:0", http: "off", admin: "127.0.0.1:0"}
log: {audit: {enabled: false}}
` + policy))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, newLogger(io.Discard, "error", "json"), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	conn, err := grpc.NewClient(a.lnGRPC.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		<-done //nolint:errcheck // the dial error is the one to report
		t.Fatal(err)
	}
	var once sync.Once
	g := &faultGateway{app: a, client: authv3.NewAuthorizationClient(conn), admin: a.lnAdmin.Addr().String()}
	g.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
			conn.Close()
		})
	}
	t.Cleanup(g.stop)
	waitFor(t, "the gateway to be ready", func() bool { ok, _ := a.ready(); return ok })
	return g
}

// checkStatus sends one Check for a POST to the shared resource with tok as
// its Bearer token ("" sends none) and returns the HTTP status the client
// would see: 200 when allowed, the denial's status otherwise.
func checkStatus(c authv3.AuthorizationClient, tok string) (int, error) {
	var headers [][2]string
	if tok != "" {
		headers = [][2]string{{"authorization", "Bearer " + tok}}
	}
	req, err := check.EnvoyRequest{Method: "POST", URL: sharedResource, Headers: headers}.Proto()
	if err != nil {
		return 0, err
	}
	// Generous: this bounds a Check that never answers, not a slow one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, req)
	if err != nil {
		return 0, err
	}
	if resp.GetStatus().GetCode() == 0 {
		return http.StatusOK, nil
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode()), nil
}

// mintMany mints n distinct tokens from tmpl (subject, scopes; each gets
// its own jti, so each is a new token to the gateway).
func mintMany(t testing.TB, iss *devissuer.Issuer, n int, tmpl devissuer.Token) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		tok, err := iss.Mint(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = tok
	}
	return out
}

// toolsToken is the template of a valid token for the shared resource.
var toolsToken = devissuer.Token{Subject: "alice", ClientID: "cli", Scopes: []string{"mcp:tools"}}

// forge returns tok with the first character of its signature changed: a
// token whose header and claims are genuine and whose signature is not.
func forge(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// forgeAll forges every token of a pool.
func forgeAll(toks []string) []string {
	out := make([]string, len(toks))
	for i, tok := range toks {
		out[i] = forge(tok)
	}
	return out
}

// garbageToken is a random string of the Bearer token grammar that no
// issuer made: a new one is a cache miss everywhere.
func garbageToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pool hands out a class's tokens in turn.
func pool(toks []string) func(n int64) string {
	return func(n int64) string { return toks[n%int64(len(toks))] }
}

// noToken is the token function of requests without credentials.
func noToken(int64) string { return "" }

// judgement is how one answer compares with the documentation.
type judgement int

const (
	judgedOK          judgement = iota
	judgedWrongAllow            // a token that must be denied was allowed
	judgedValidDenied           // a valid token denied outside a documented window
	judgedUnexpected            // denied, but not with the documented status
	judgedNoted                 // the documentation promises nothing here
)

// expect is what a class of tokens may get in one phase.
type expect struct {
	allow  bool  // a valid token: allowed, or denied with a status of window
	window []int // the documented denials for it in this phase
	deny   []int // a token that must be denied: with one of these statuses
	noted  bool  // count, do not judge
}

// valid: the token must be allowed, or denied with a status of window.
func valid(window ...int) expect { return expect{allow: true, window: window} }

// denied: the token must be denied, with one of statuses.
func denied(statuses ...int) expect { return expect{deny: statuses} }

// noted: the answer is recorded and reported, not judged.
func noted() expect { return expect{noted: true} }

func (e expect) judge(status int, err error) judgement {
	switch {
	case e.noted:
		return judgedNoted
	case err != nil:
		// The Check must always answer: Envoy would turn an error into
		// its status_on_error, or into an allow with failure_mode_allow.
		if e.allow {
			return judgedValidDenied
		}
		return judgedUnexpected
	case e.allow && (status == http.StatusOK || slices.Contains(e.window, status)):
		return judgedOK
	case e.allow:
		return judgedValidDenied
	case status == http.StatusOK:
		return judgedWrongAllow
	case slices.Contains(e.deny, status):
		return judgedOK
	}
	return judgedUnexpected
}

// loadClass is one kind of request the load sends.
type loadClass struct {
	name string
	gw   authv3.AuthorizationClient
	// token returns the credential of the class's n-th request ("": none).
	token func(n int64) string
	// phases says what the class may get in each phase; the class sends
	// nothing in a phase it does not list.
	phases map[string]expect
	// weight is how many turns the class takes in each round (0: one).
	weight int
	sent   atomic.Int64
}

// phaseState is the phase the load is in. Workers hold mu (read) from the
// moment they read the phase until their answer is recorded, so the
// controller can wait for every request of a past phase to finish before
// it changes what the gateway depends on.
type phaseState struct {
	name string
	mu   sync.RWMutex
}

type tallyKey struct {
	phase, class string
	status       int // 0: the Check returned an error
}

// load drives Checks from faultWorkers goroutines until finish.
type load struct {
	t       *testing.T
	name    string
	classes []*loadClass
	cur     atomic.Pointer[phaseState]
	stop    chan struct{}
	wg      sync.WaitGroup
	started time.Time

	mu      sync.Mutex
	phases  []string // in the order they began
	tally   map[tallyKey]int64
	judged  map[judgement]map[tallyKey]int64
	answers map[[2]string]int64 // per phase and class
	errs    []string            // the first few gRPC errors
}

// startLoad starts the workers in the first phase.
func startLoad(t *testing.T, name, phase string, classes ...*loadClass) *load {
	t.Helper()
	l := &load{t: t, name: name, classes: classes, stop: make(chan struct{}), started: time.Now(),
		tally: map[tallyKey]int64{}, judged: map[judgement]map[tallyKey]int64{}, answers: map[[2]string]int64{}}
	l.cur.Store(&phaseState{name: phase})
	l.phases = []string{phase}
	var schedule []*loadClass
	for _, c := range classes {
		for range max(c.weight, 1) {
			schedule = append(schedule, c)
		}
	}
	for w := range faultWorkers {
		l.wg.Add(1)
		go l.work(w, schedule)
	}
	// Whatever happens, the workers stop before the cleanups that close
	// what they talk to.
	t.Cleanup(l.halt)
	return l
}

func (l *load) work(w int, schedule []*loadClass) {
	defer l.wg.Done()
	for i := w * 7; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		ps := l.cur.Load()
		ps.mu.RLock()
		if ps != l.cur.Load() { // the phase changed before the lock was taken
			ps.mu.RUnlock()
			continue
		}
		c := schedule[i%len(schedule)]
		e, active := c.phases[ps.name]
		if !active {
			ps.mu.RUnlock()
			if i%len(schedule) == len(schedule)-1 {
				runtime.Gosched() // a phase with few classes: do not spin hard
			}
			continue
		}
		status, err := checkStatus(c.gw, c.token(c.sent.Add(1)-1))
		l.record(ps.name, c.name, e, status, err)
		ps.mu.RUnlock()
	}
}

func (l *load) record(phase, class string, e expect, status int, err error) {
	j := e.judge(status, err)
	k := tallyKey{phase, class, status}
	if err != nil {
		k.status = 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tally[k]++
	l.answers[[2]string{phase, class}]++
	if l.judged[j] == nil {
		l.judged[j] = map[tallyKey]int64{}
	}
	l.judged[j][k]++
	if err != nil && len(l.errs) < 5 {
		l.errs = append(l.errs, fmt.Sprintf("%s/%s: %v", phase, class, err))
	}
}

// setPhase moves the load to the next phase and returns once every request
// sent in the previous one has been answered and recorded.
func (l *load) setPhase(name string) {
	l.mu.Lock()
	l.phases = append(l.phases, name)
	l.mu.Unlock()
	old := l.cur.Swap(&phaseState{name: name})
	// An empty critical section: it waits for the old phase's requests in flight.
	old.mu.Lock()
	old.mu.Unlock() //nolint:staticcheck // see above
}

// hold lets the current phase run for at least d, and until every class
// active in it has been answered at least n times in it.
func (l *load) hold(d time.Duration, n int64) {
	l.t.Helper()
	time.Sleep(d)
	phase := l.cur.Load().name
	for _, c := range l.classes {
		if _, ok := c.phases[phase]; !ok {
			continue
		}
		waitFor(l.t, fmt.Sprintf("%d answers to %s in phase %s", n, c.name, phase), func() bool {
			return l.answered(phase, c.name) >= n
		})
	}
}

func (l *load) answered(phase, class string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers[[2]string{phase, class}]
}

// halt stops the workers and waits for them; idempotent.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// finish stops the load, logs the scenario's one-line report and fails the
// test if any answer was wrong.
func (l *load) finish() {
	l.t.Helper()
	l.halt()
	elapsed := time.Since(l.started)
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for _, n := range l.tally {
		total += n
	}
	var parts []string
	for _, p := range l.phases {
		var cls []string
		for _, c := range l.classes {
			if s := l.statusesLocked(p, c.name); s != "" {
				cls = append(cls, c.name+" "+s)
			}
		}
		if len(cls) > 0 {
			parts = append(parts, p+": "+strings.Join(cls, ", "))
		}
	}
	sum := func(j judgement) (n int64) {
		for _, v := range l.judged[j] {
			n += v
		}
		return n
	}
	l.t.Logf("REPORT %s: %d Checks in %.1fs from %d goroutines | %s | wrongly allowed %d, valid denied outside documented windows %d, unexpected status %d, noted (not judged) %d",
		l.name, total, elapsed.Seconds(), faultWorkers, strings.Join(parts, " | "),
		sum(judgedWrongAllow), sum(judgedValidDenied), sum(judgedUnexpected), sum(judgedNoted))
	for _, c := range []struct {
		j    judgement
		what string
	}{
		{judgedWrongAllow, "wrongly allowed (a token that must be denied was allowed)"},
		{judgedValidDenied, "valid tokens denied outside the documented windows"},
		{judgedUnexpected, "denied with a status the documentation does not give for this case, or no answer"},
	} {
		if n := sum(c.j); n != 0 {
			l.t.Errorf("%s: %d %s: %s", l.name, n, c.what, describe(l.judged[c.j]))
		}
	}
	if len(l.errs) > 0 {
		l.t.Errorf("%s: Checks failed with gRPC errors: %s", l.name, strings.Join(l.errs, "; "))
	}
	if total == 0 {
		l.t.Errorf("%s: no Check was sent", l.name)
	}
}

// statusesLocked formats one class's answers in one phase: "200×12 503×3".
func (l *load) statusesLocked(phase, class string) string {
	var keys []tallyKey
	for k := range l.tally {
		if k.phase == phase && k.class == class {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].status < keys[j].status })
	var out []string
	for _, k := range keys {
		st := fmt.Sprint(k.status)
		if k.status == 0 {
			st = "error"
		}
		out = append(out, fmt.Sprintf("%s×%d", st, l.tally[k]))
	}
	return strings.Join(out, " ")
}

func describe(m map[tallyKey]int64) string {
	var out []string
	for k, n := range m {
		st := fmt.Sprint(k.status)
		if k.status == 0 {
			st = "gRPC error"
		}
		out = append(out, fmt.Sprintf("%s in phase %s got %s ×%d", k.class, k.phase, st, n))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// always expects e in every one of phases.
func always(e expect, phases ...string) map[string]expect {
	m := make(map[string]expect, len(phases))
	for _, p := range phases {
		m[p] = e
	}
	return m
}

// TestFaultJWKSDown: the issuer's JWKS endpoint fails in the middle of the
// load, answering 503 or not answering at all. docs/operating.md, Failure modes:
// "Tokens signed with keys already held keep verifying; a token with a kid
// that is not held gets 503 (it may be a rotation we cannot fetch)."
func TestFaultJWKSDown(t *testing.T) {
	for _, mode := range []string{"503", "hang"} {
		t.Run(mode, func(t *testing.T) { faultJWKSDown(t, mode) })
	}
}

func faultJWKSDown(t *testing.T, mode string) {
	iss, srv := startIssuer(t, sharedResource)
	// "hang": the JWKS endpoint accepts the request and answers nothing
	// until the gateway gives up (jwks.timeout) or the outage ends.
	var hang atomic.Bool
	release := make(chan struct{})
	var releaseOnce sync.Once
	unhang := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unhang) // before the issuer's server closes (cleanups run last in, first out)
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() && strings.HasSuffix(r.URL.Path, "/jwks.json") {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	})
	breakJWKS := func() {
		if mode == "hang" {
			hang.Store(true)
		} else {
			iss.SetJWKSStatus(http.StatusServiceUnavailable)
		}
	}
	restoreJWKS := func() {
		hang.Store(false)
		unhang()
		iss.SetJWKSStatus(0)
	}

	clock := testkit.NewClock()
	g := startFaultGateway(t, fmt.Sprintf(`
jwks: {timeout: 1s}   # bounds the hanging fetch
resources:
  - name: mcp
    resource: %q
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    required_scopes: ["mcp:tools"]
`, sharedResource, iss.Issuer(), iss.JWKSURL()), appOptions{now: clock.Now})

	// Once ready, the gateway's next scheduled fetch is minutes away.
	fetchesAtReady := iss.JWKSFetches()
	seen := mintMany(t, iss, 100, toolsToken)  // presented from the start
	fresh := mintMany(t, iss, 200, toolsToken) // first presented during the outage
	// The issuer starts signing with a key the gateway has never fetched:
	// published now, but the gateway has no reason to fetch before the
	// outage (its clock stands still, so no unknown kid may refetch, and
	// its scheduled refresh is minutes away).
	oldKID := iss.ActiveKID()
	newKID, err := iss.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	iss.Use(newKID)
	rotated := mintMany(t, iss, 50, toolsToken)
	iss.Use(oldKID)
	rogueIss, err := devissuer.New(iss.Issuer(), "RS256", nil) // same iss, a key never published
	if err != nil {
		t.Fatal(err)
	}
	rogueIss.DefaultAudience = sharedResource
	rogue := mintMany(t, rogueIss, 20, toolsToken)

	const up, breaking, down, restoring, recovered = "up", "breaking", "down", "restoring", "recovered"
	all := []string{up, breaking, down, restoring, recovered}
	l := startLoad(t, "jwks-"+mode, up,
		&loadClass{name: "held-key", gw: g.client, token: pool(seen), weight: 3, phases: always(valid(), all...)},
		&loadClass{name: "held-key-new-token", gw: g.client, token: pool(fresh), weight: 2,
			phases: always(valid(), down, restoring, recovered)},
		&loadClass{name: "new-kid", gw: g.client, token: pool(rotated), phases: map[string]expect{
			// Sent while the JWKS breaks: before the clock moves, an
			// unknown kid may not refetch and is a 401 (docs/operating.md: "unknown
			// kid" is a 401, refetched at most once per interval).
			breaking: denied(401, 503),
			down:     denied(503),
			// The refetch that finds the key may still be failing or
			// under way: "cannot verify now" is a 503.
			restoring: valid(503),
			recovered: valid(),
		}},
		&loadClass{name: "rogue-kid", gw: g.client, token: pool(rogue), phases: map[string]expect{
			breaking: denied(401, 503), down: denied(503), restoring: denied(401, 503), recovered: denied(401),
		}},
		&loadClass{name: "forged", gw: g.client, token: pool(forgeAll(seen[:20])), phases: always(denied(401), all...)},
		&loadClass{name: "no-token", gw: g.client, token: noToken, phases: always(denied(401), all...)},
	)
	l.hold(time.Second, 20)
	if n := iss.JWKSFetches(); n != fetchesAtReady {
		t.Fatalf("the gateway fetched the JWKS %d times after it was ready, before the outage; the scenario needs the new key never fetched", n-fetchesAtReady)
	}

	l.setPhase(breaking)
	breakJWKS()
	clock.Advance(pastUnknownKIDInterval)
	l.setPhase(down)
	l.hold(2*time.Second, 20)
	if mode == "503" && iss.JWKSFetches() <= fetchesAtReady {
		t.Errorf("no JWKS fetch was attempted for the unknown kid during the outage")
	}

	l.setPhase(restoring)
	restoreJWKS()
	clock.Advance(pastUnknownKIDInterval)
	waitFor(t, "a token with the new kid to be allowed", func() bool {
		st, err := checkStatus(g.client, rotated[0])
		return err == nil && st == http.StatusOK
	})
	l.setPhase(recovered)
	l.hold(time.Second, 20)
	l.finish()
}

// TestFaultKeyRotation: the issuer rotates its signing key in the middle of
// the load. docs/operating.md, Failure modes, Key rotation: "An unknown kid triggers one JWKS refetch,
// shared by all concurrent requests, at most once per
// jwks.unknown_kid_min_interval per issuer"; How a request is decided: an
// unknown kid is never cached, "it is re-checked after the JWKS refetch
// interval". So once the interval since the last fetch has passed, tokens
// with the new kid are allowed after one refetch, with no denial at all;
// within the interval they may get 401 (the documented window) and are
// allowed as soon as it has passed. Old tokens keep working while their key
// is still published.
func TestFaultKeyRotation(t *testing.T) {
	iss, _ := startIssuer(t, sharedResource)
	clock := testkit.NewClock()
	// negative_ttl far beyond the clock moves: an unknown kid wrongly
	// cached as invalid would still be denied when the key is known.
	g := startFaultGateway(t, fmt.Sprintf(`
cache: {negative_ttl: 10m}
resources:
  - name: mcp
    resource: %q
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    required_scopes: ["mcp:tools"]
`, sharedResource, iss.Issuer(), iss.JWKSURL()), appOptions{now: clock.Now})

	old := mintMany(t, iss, 100, toolsToken)
	oldLate := mintMany(t, iss, 100, toolsToken) // first presented after the rotation
	rogueIss, err := devissuer.New(iss.Issuer(), "RS256", nil)
	if err != nil {
		t.Fatal(err)
	}
	rogueIss.DefaultAudience = sharedResource
	rogue := mintMany(t, rogueIss, 20, toolsToken)

	// Tokens of the keys to come, filled in by the controller before the
	// phases that send them.
	var second, third atomic.Pointer[[]string]
	fromPtr := func(p *atomic.Pointer[[]string]) func(int64) string {
		return func(n int64) string { return pool(*p.Load())(n) }
	}

	const before, rotating, rotated, again, settled = "before", "rotating", "rotated", "rotated-again", "settled"
	all := []string{before, rotating, rotated, again, settled}
	l := startLoad(t, "key-rotation", before,
		&loadClass{name: "old-kid", gw: g.client, token: pool(old), weight: 2, phases: always(valid(), all...)},
		&loadClass{name: "old-kid-new-token", gw: g.client, token: pool(oldLate), phases: always(valid(), rotated, again, settled)},
		&loadClass{name: "second-kid", gw: g.client, token: fromPtr(&second), weight: 2, phases: always(valid(), rotated, again, settled)},
		// Within the interval of the last fetch: 401 is the window.
		&loadClass{name: "third-kid", gw: g.client, token: fromPtr(&third), weight: 2, phases: map[string]expect{
			again: valid(401), settled: valid(),
		}},
		&loadClass{name: "rogue-kid", gw: g.client, token: pool(rogue), phases: always(denied(401), all...)},
		&loadClass{name: "forged", gw: g.client, token: pool(forgeAll(old[:20])), phases: always(denied(401), all...)},
	)
	l.hold(time.Second, 20)

	// signWithNewKey publishes a new key, signs with it from now on, and
	// hands 100 tokens signed by it to the class reading dst.
	signWithNewKey := func(dst *atomic.Pointer[[]string]) {
		kid, err := iss.AddKey("RS256")
		if err != nil {
			t.Fatal(err)
		}
		iss.Use(kid)
		toks := mintMany(t, iss, 100, toolsToken)
		dst.Store(&toks)
	}

	// First rotation: the last fetch is older than the interval.
	l.setPhase(rotating)
	fetches := iss.JWKSFetches()
	signWithNewKey(&second)
	clock.Advance(pastUnknownKIDInterval)
	l.setPhase(rotated)
	l.hold(2*time.Second, 40)
	firstRefetches := iss.JWKSFetches() - fetches

	// Second rotation, right after the refetch the first one caused: the
	// third key's tokens wait for the interval, then one refetch.
	// Its key is published while the gateway's clock stands still: no
	// unknown kid may refetch before the clock moves.
	fetches = iss.JWKSFetches()
	signWithNewKey(&third)
	l.setPhase(again)
	l.hold(500*time.Millisecond, 20)
	clock.Advance(pastUnknownKIDInterval)
	l.setPhase(settled)
	l.hold(time.Second, 40)
	secondRefetches := iss.JWKSFetches() - fetches
	l.finish()

	t.Logf("JWKS refetches: %d for the first rotation, %d for the second", firstRefetches, secondRefetches)
	if firstRefetches > 1 || secondRefetches > 1 {
		t.Errorf("a rotation cost %d and %d JWKS fetches; want at most one each", firstRefetches, secondRefetches)
	}
}

// slowAS is an RFC 7662 authorization server on a loopback port that can
// turn slow: it then holds every introspection call until the caller gives
// up, which is the gateway's introspection.timeout. Its tokens are random
// strings it remembers.
type slowAS struct {
	srv     *httptest.Server
	secret  string
	slow    atomic.Bool
	release chan struct{} // closed at cleanup: frees any call still held

	mu     sync.Mutex
	issued map[string]bool

	calls, held, inflight atomic.Int64
}

const slowASClient = "extauthz-fault"

func startSlowAS(t *testing.T) *slowAS {
	t.Helper()
	as := &slowAS{secret: garbageToken(), release: make(chan struct{}), issued: map[string]bool{}}
	as.srv = httptest.NewServer(http.HandlerFunc(as.introspect))
	t.Cleanup(as.srv.Close)
	t.Cleanup(func() { close(as.release) }) // runs first: Close waits for handlers
	return as
}

// mint returns a token the server calls active.
func (as *slowAS) mint() string {
	tok := garbageToken()
	as.mu.Lock()
	as.issued[tok] = true
	as.mu.Unlock()
	return tok
}

func (as *slowAS) introspect(w http.ResponseWriter, r *http.Request) {
	as.calls.Add(1)
	user, pass, ok := r.BasicAuth()
	id, _ := url.QueryUnescape(user)
	secret, _ := url.QueryUnescape(pass)
	if !ok || id != slowASClient || subtle.ConstantTimeCompare([]byte(secret), []byte(as.secret)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if as.slow.Load() {
		as.held.Add(1)
		as.inflight.Add(1)
		defer as.inflight.Add(-1)
		// Until the gateway closes the connection, however long that takes:
		// a gateway that never gave up would keep this goroutine, and the
		// goroutine count would show it.
		select {
		case <-r.Context().Done():
		case <-as.release:
		}
		return
	}
	as.mu.Lock()
	active := as.issued[r.PostForm.Get("token")]
	as.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !active {
		_, _ = w.Write([]byte(`{"active":false}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"active": true, "sub": "alice", "client_id": "cli", "scope": "mcp:tools",
		"aud": sharedResource, "exp": time.Now().Add(time.Hour).Unix(), "token_type": "Bearer",
	})
}

// TestFaultIntrospectionSlow: the introspection endpoint stops answering in
// time in the middle of the load. docs/operating.md, Failure modes: "Each call is
// bounded by introspection.timeout; the Check gets 503 and nothing is
// cached. Tokens already verified keep being served from the cache until
// their cache_ttl." The goroutines of the abandoned calls must not pile up:
// the count returns near where it was before the load.
func TestFaultIntrospectionSlow(t *testing.T) {
	as := startSlowAS(t)
	t.Setenv("EXTAUTHZ_FAULT_INTROSPECTION_SECRET", as.secret)
	g := startFaultGateway(t, fmt.Sprintf(`
cache: {negative_ttl: 1m}
resources:
  - name: mcp
    resource: %q
    required_scopes: ["mcp:tools"]
    authorization_servers:
      - issuer: %q
        token_mode: introspection
        introspection:
          endpoint: %q
          client_id: %s
          client_secret: {env: EXTAUTHZ_FAULT_INTROSPECTION_SECRET}
          timeout: 200ms
          cache_ttl: 1m
`, sharedResource, as.srv.URL, as.srv.URL+"/introspect", slowASClient), appOptions{})

	cached := make([]string, 50)
	for i := range cached {
		cached[i] = as.mint()
	}
	inactive := make([]string, 20)
	for i := range inactive {
		inactive[i] = garbageToken()
	}
	// The gRPC connection is up before the baseline is taken.
	if st, err := checkStatus(g.client, ""); err != nil || st != http.StatusUnauthorized {
		t.Fatalf("warm-up Check: %d %v", st, err)
	}
	runtime.GC()
	baseline := runtime.NumGoroutine()

	var peak atomic.Int64
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
		}
	}()

	var slowLatencies []time.Duration
	const fast, slow = "fast", "slow"
	l := startLoad(t, "introspection-slow", fast,
		// While the endpoint is fast, a call may still miss the 200ms
		// deadline on a busy machine: 503 is then the documented answer.
		&loadClass{name: "cached-active", gw: g.client, token: pool(cached), weight: 2, phases: map[string]expect{
			fast: valid(503), slow: valid(),
		}},
		&loadClass{name: "cached-inactive", gw: g.client, token: pool(inactive), phases: map[string]expect{
			fast: denied(401, 503), slow: denied(401),
		}},
		// New tokens during the slowdown: the server would say active, but
		// not in time. 503 is the documented answer; an allow would be a
		// decision made without verifying (counted as wrongly allowed).
		&loadClass{name: "new-active", gw: g.client, token: func(int64) string { return as.mint() }, weight: 2, phases: map[string]expect{
			slow: denied(503),
		}},
		&loadClass{name: "new-unknown", gw: g.client, token: func(int64) string { return garbageToken() }, phases: map[string]expect{
			slow: denied(503),
		}},
		&loadClass{name: "no-token", gw: g.client, token: noToken, phases: always(denied(401), fast, slow)},
	)
	l.hold(700*time.Millisecond, 2*int64(len(cached)))
	// Every token of both pools has been answered by the endpoint in time
	// at least once, so its verdict is cached (a call that missed the
	// deadline is retried here until one does not).
	for _, tok := range cached {
		waitFor(t, "an active token to be allowed", func() bool {
			st, err := checkStatus(g.client, tok)
			return err == nil && st == http.StatusOK
		})
	}
	for _, tok := range inactive {
		waitFor(t, "an inactive token to be refused", func() bool {
			st, err := checkStatus(g.client, tok)
			return err == nil && st == http.StatusUnauthorized
		})
	}

	as.slow.Store(true)
	l.setPhase(slow)
	start := time.Now()
	l.hold(3*time.Second, 20)
	// Enough abandoned calls that a goroutine kept per call would show.
	waitFor(t, "100 introspection calls held past the deadline", func() bool { return as.held.Load() >= 100 })
	loadTime := time.Since(start)
	// A few single Checks of new tokens, timed for the report (not judged
	// on time: a busy machine is slow).
	for range 5 {
		t0 := time.Now()
		st, err := checkStatus(g.client, as.mint())
		slowLatencies = append(slowLatencies, time.Since(t0).Round(time.Millisecond))
		if err != nil || st != http.StatusServiceUnavailable {
			t.Errorf("a new token while introspection is slow: %d %v; want 503", st, err)
		}
	}
	l.finish()
	close(stopSampler)
	<-samplerDone

	// After the load: the abandoned calls' goroutines (the gateway's HTTP
	// client, the server's handlers) are gone. The bound allows for a few
	// kept-alive connections to the endpoint (three goroutines each) and
	// the runtime's own; a goroutine kept per abandoned call would be
	// hundreds.
	const slack = 40
	var after int
	waitFor(t, "the goroutine count to return near its baseline", func() bool {
		after = runtime.NumGoroutine()
		return after <= baseline+slack
	})
	// And the endpoint holds no call any more: the gateway gave up on
	// every one (closed its connection), as its deadline says.
	waitFor(t, "the endpoint to hold no introspection call", func() bool { return as.inflight.Load() == 0 })
	t.Logf("REPORT introspection-slow goroutines: baseline %d, peak during load %d, after %d (bound baseline+%d); %d calls held by the slow endpoint over %.1fs; single Checks of a new token took %v (timeout 200ms)",
		baseline, peak.Load(), after, slack, as.held.Load(), loadTime.Seconds(), slowLatencies)
}

// TestFaultRedisRestart: two replicas share the test's own Redis, which is
// killed and restarted (losing its data: it has no persistence) in the
// middle of the load. TestRedisOutageKeepsDecisionsCorrect covers one
// replica's answers around an outage; this one adds revocations and a
// second replica.
//
// What the documentation guarantees, and what is judged:
//   - Failure modes, Redis slow or down: "Checks go on with the in-process
//     tier and local verification, with the same answers": valid tokens
//     are allowed on both replicas in every phase, invalid ones denied.
//   - Revocation: a purge answered 200 means "from now on, no replica
//     allows the token", and Cache: "Nothing is allowed with Redis down that
//     would not be allowed with it up": a token purged (200) before the
//     kill is denied on both replicas while Redis is down — whether or not
//     it was checked between the purge and the kill.
//   - Revocation: a purge answered 503 (Redis unreachable) means "revoked on
//     this replica only": denied on the replica that revoked it while Redis
//     is still down; on the other replica, nothing is promised (noted).
//
// Not judged, noted: after the restart. The README says a replica clears
// its in-process tier when its subscription comes back, and says nothing of
// what becomes of revocations when Redis itself has lost them.
func TestFaultRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	a, b := startInstance(t, srv.Addr(), iss), startInstance(t, srv.Addr(), iss)
	waitSubscribers(t, srv.Addr(), 2)

	early := mintMany(t, iss, 200, toolsToken)
	late := mintMany(t, iss, 200, toolsToken) // first presented while Redis is down
	forged := forgeAll(early[:20])
	r1, r2, r3 := mintScoped(t, iss, time.Hour), mintScoped(t, iss, time.Hour), mintScoped(t, iss, time.Hour)
	for _, tok := range []string{r1, r2, r3} {
		for name, in := range map[string]*instance{"A": a, "B": b} {
			if st, _ := in.decide(t, tok); st != http.StatusOK {
				t.Fatalf("%s before any purge: %d", name, st)
			}
		}
	}
	one := func(tok string) func(int64) string { return func(int64) string { return tok } }
	garbage := func(int64) string { return garbageToken() } // a miss in every tier: reaches Redis

	const up, revoked, down, downPurged, restarting, restarted = "up", "revoked", "down", "down-purged", "restarting", "restarted"
	all := []string{up, revoked, down, downPurged, restarting, restarted}
	var classes []*loadClass
	for _, r := range []struct {
		name string
		in   *instance
	}{{"A", a}, {"B", b}} {
		// The 503 purge promises the revoking replica only.
		whileDown := noted()
		if r.name == "A" {
			whileDown = denied(401)
		}
		classes = append(classes,
			&loadClass{name: "valid@" + r.name, gw: r.in.client, token: pool(early), weight: 2, phases: always(valid(), all...)},
			&loadClass{name: "valid-late@" + r.name, gw: r.in.client, token: pool(late), phases: always(valid(), down, downPurged, restarting, restarted)},
			&loadClass{name: "forged@" + r.name, gw: r.in.client, token: pool(forged), phases: always(denied(401), all...)},
			&loadClass{name: "garbage@" + r.name, gw: r.in.client, token: garbage, phases: always(denied(401), all...)},
			// Purged (200) before the kill and checked all along.
			&loadClass{name: "purged-in-use@" + r.name, gw: r.in.client, token: one(r1), phases: map[string]expect{
				revoked: denied(401), down: denied(401), downPurged: denied(401), restarting: noted(), restarted: noted(),
			}},
			// Purged (200) just before the kill, not checked in between.
			&loadClass{name: "purged-then-killed@" + r.name, gw: r.in.client, token: one(r2), phases: map[string]expect{
				down: denied(401), downPurged: denied(401), restarting: noted(), restarted: noted(),
			}},
			// Purged through A while Redis is down (503).
			&loadClass{name: "purged-while-down@" + r.name, gw: r.in.client, token: one(r3), phases: map[string]expect{
				downPurged: whileDown, restarting: noted(), restarted: noted(),
			}},
		)
	}
	l := startLoad(t, "redis-restart", up, classes...)
	l.hold(time.Second, 20)

	purgeConfirmed(t, a, r1)
	l.setPhase(revoked)
	l.hold(time.Second, 20)

	purgeConfirmed(t, a, r2)
	srv.Stop()
	l.setPhase(down)
	waitFor(t, "both circuits to open", func() bool {
		return a.stats.snapshot().CircuitOpen && b.stats.snapshot().CircuitOpen
	})
	l.hold(time.Second, 20)

	st, res := a.purge(t, adminToken, map[string]string{"token": r3})
	if st != http.StatusServiceUnavailable || res.Shared {
		t.Errorf("purge through A while Redis is down: %d %+v; want 503, not shared", st, res)
	}
	l.setPhase(downPurged)
	l.hold(time.Second, 20)

	l.setPhase(restarting)
	srv.Restart()
	waitFor(t, "both circuits to close", func() bool {
		return !a.stats.snapshot().CircuitOpen && !b.stats.snapshot().CircuitOpen
	})
	waitSubscribers(t, srv.Addr(), 2)
	l.setPhase(restarted)
	l.hold(time.Second, 20)
	l.finish()
}

// purgeConfirmed revokes tok through in until the answer is 200 with both
// replicas confirming. A 202 (a replica slower than the 2s the gateway
// waits) is retried, as the documentation says to: the scenarios judge what a
// 200 promises.
func purgeConfirmed(t *testing.T, in *instance, tok string) {
	t.Helper()
	waitFor(t, "a purge confirmed by both replicas", func() bool {
		st, res := in.purge(t, adminToken, map[string]string{"token": tok})
		return st == http.StatusOK && res.Replicas == 2 && res.Acknowledged == 2
	})
}
