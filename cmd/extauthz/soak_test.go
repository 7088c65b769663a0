package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/extauthz/extauthz/internal/testkit"
)

// soakDefault is how long TestSoak runs in CI. Set EXTAUTHZ_SOAK to a Go
// duration to soak longer, for example
//
//	EXTAUTHZ_SOAK=10m go test -race -count=1 -run TestSoak -timeout 30m ./cmd/extauthz/
//
// (raise -timeout with it: go test's default of 10m ends the run).
const soakDefault = 20 * time.Second

// Soak sizes: many more distinct valid tokens than the in-process tier may
// hold, so that it evicts all along.
const (
	soakMaxEntries  = 1000
	soakValidTokens = 5000
)

// TestSoak (issue #11, point 4) runs a mix of valid, garbage, expired,
// wrong-audience and forged tokens and requests without one from several
// goroutines against a gateway whose in-process tier holds far fewer tokens
// than the load uses. It checks that every answer is right, that the tier
// stays within cache.max_entries while it evicts (read from /metrics, as an
// operator would), that the decision metrics count exactly the Checks sent,
// and that once the gateway is shut down its goroutines are gone and the
// heap is back near where it started.
func TestSoak(t *testing.T) {
	// Taken first, so that everything this test starts — the issuer's
	// server included — must be gone at the end.
	ignoreBefore := goleak.IgnoreCurrent()

	duration := soakDefault
	if v := os.Getenv("EXTAUTHZ_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("EXTAUTHZ_SOAK=%q: want a positive Go duration such as 10m", v)
		}
		duration = d
	}

	// EdDSA: minting 5,000 tokens and verifying most of them again under
	// the race detector stays cheap.
	iss, issuerSrv := testkit.Issuer(t, "EdDSA", "/realms/test", sharedResource, nil)
	// Valid tokens outlive the soak, however long it is asked to run.
	ttl := max(time.Hour, duration+10*time.Minute)
	validTmpl := toolsToken
	validTmpl.TTL = ttl
	good := mintMany(t, iss, soakValidTokens, validTmpl)
	expiredTmpl := toolsToken
	expiredTmpl.TTL = -10 * time.Minute // beyond tokens.leeway
	expired := mintMany(t, iss, 200, expiredTmpl)
	otherTmpl := validTmpl
	otherTmpl.Audience = []string{"https://other.example.com/mcp"}
	wrongAudience := mintMany(t, iss, 200, otherTmpl)
	forged := forgeAll(good[:200])

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	g := startFaultGateway(t, fmt.Sprintf(`
cache: {max_entries: %d, max_negative_entries: %d}
resources:
  - name: mcp
    resource: %q
    authorization_servers: [{issuer: %q, jwks_uri: %q}]
    required_scopes: ["mcp:tools"]
`, soakMaxEntries, soakMaxEntries, sharedResource, iss.Issuer(), iss.JWKSURL()), appOptions{})

	// /metrics is read by a client of the test's own, whose connections
	// are closed before the goroutines are counted.
	scrapeTransport := &http.Transport{}
	scraper := &http.Client{Transport: scrapeTransport, Timeout: 30 * time.Second}
	scrape := func() (map[string]*dto.MetricFamily, error) {
		resp, err := scraper.Get("http://" + g.admin + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("/metrics: %s", resp.Status)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(resp.Body)
	}

	const soak = "soak"
	random := func(toks []string) func(int64) string {
		return func(int64) string { return toks[rand.IntN(len(toks))] }
	}
	l := startLoad(t, "soak", soak,
		&loadClass{name: "valid", gw: g.client, token: random(good), weight: 6, phases: always(valid(), soak)},
		&loadClass{name: "garbage", gw: g.client, weight: 2, phases: always(denied(401), soak), token: func(n int64) string {
			if n%2 == 0 {
				return garbageToken()
			}
			// JWT-shaped: a header naming the issuer's algorithm, the
			// rest random.
			return "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9." + garbageToken() + "." + garbageToken()
		}},
		&loadClass{name: "expired", gw: g.client, token: random(expired), phases: always(denied(401), soak)},
		&loadClass{name: "wrong-audience", gw: g.client, token: random(wrongAudience), phases: always(denied(401), soak)},
		&loadClass{name: "forged", gw: g.client, token: random(forged), phases: always(denied(401), soak)},
		&loadClass{name: "no-token", gw: g.client, token: noToken, phases: always(denied(401), soak)},
	)

	// The in-process tiers' sizes, read every second while the load runs.
	// A count may include, beyond the bound, entries being stored by the
	// Checks in flight (at most one each, faultWorkers of them): the
	// store applies evictions before it counts (Memory.Len), but a Set
	// between the two is counted before its eviction. Anything beyond
	// that is the tier outgrowing its bound.
	type sizes struct{ valid, invalid float64 }
	var (
		sizeMu             sync.Mutex
		maxSeen            sizes
		overBound, scrapes int
		scrapeErr          error
	)
	stopScraper, scraperDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scraperDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopScraper:
				return
			case <-tick.C:
			}
			mf, err := scrape()
			sizeMu.Lock()
			if err != nil {
				scrapeErr = err
				sizeMu.Unlock()
				continue
			}
			v, _ := value(mf, "extauthz_cache_entries", map[string]string{"kind": "valid"})
			inv, _ := value(mf, "extauthz_cache_entries", map[string]string{"kind": "invalid"})
			scrapes++
			maxSeen.valid, maxSeen.invalid = max(maxSeen.valid, v), max(maxSeen.invalid, inv)
			if v > soakMaxEntries+faultWorkers || inv > soakMaxEntries+faultWorkers {
				overBound++
			}
			sizeMu.Unlock()
		}
	}()

	time.Sleep(duration)
	l.finish()
	close(stopScraper)
	<-scraperDone

	mf, err := scrape()
	if err != nil {
		t.Fatal(err)
	}
	evictions, _ := value(mf, "extauthz_cache_evictions_total", nil)
	entries, _ := value(mf, "extauthz_cache_entries", map[string]string{"kind": "valid"})
	allowedMetric, _ := value(mf, "extauthz_check_decisions_total", map[string]string{"transport": "grpc", "decision": "allow"})
	decisionsMetric, _ := value(mf, "extauthz_check_decisions_total", map[string]string{"transport": "grpc"})
	allowed, total := l.statusTotal(http.StatusOK), l.statusTotal(-1)

	sizeMu.Lock()
	t.Logf("REPORT soak cache: %d scrapes, largest valid tier %v and invalid tier %v (bound %d each, +%d in flight), %d over the bound; %v valid entries at the end, %v evictions; decisions metric %v (allowed %v), Checks answered %d (allowed %d)",
		scrapes, maxSeen.valid, maxSeen.invalid, soakMaxEntries, faultWorkers, overBound, entries, evictions, decisionsMetric, allowedMetric, total, allowed)
	switch {
	case scrapes == 0:
		t.Errorf("/metrics was never read during the soak: %v", scrapeErr)
	case overBound > 0:
		t.Errorf("the in-process tier exceeded cache.max_entries (%d) by more than the %d Checks in flight in %d of %d scrapes; largest: valid %v, invalid %v",
			soakMaxEntries, faultWorkers, overBound, scrapes, maxSeen.valid, maxSeen.invalid)
	}
	sizeMu.Unlock()
	if entries > soakMaxEntries {
		t.Errorf("extauthz_cache_entries{kind=\"valid\"} = %v after the soak; bound %d", entries, soakMaxEntries)
	}
	if evictions <= 0 {
		t.Errorf("extauthz_cache_evictions_total = %v after %d distinct valid tokens through a tier of %d", evictions, soakValidTokens, soakMaxEntries)
	}
	if allowedMetric != float64(allowed) || decisionsMetric != float64(total) {
		t.Errorf("the decision metrics count %v decisions (%v allowed); the clients got %d answers (%d allowed)", decisionsMetric, allowedMetric, total, allowed)
	}

	// Shut everything this test started down, then count what is left.
	g.stop()
	scrapeTransport.CloseIdleConnections()
	issuerSrv.Close() // also ends the gateway's kept-alive JWKS connection, from the server side
	// goleak's own retries last under a second; a connection closed by
	// the other side ends its reading goroutine only once the close is
	// seen, which a loaded machine may take longer to get to. Wait (20s at
	// most), then let goleak report whatever is left.
	for deadline := time.Now().Add(20 * time.Second); goleak.Find(ignoreBefore) != nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	goleak.VerifyNone(t, ignoreBefore)

	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	heapAfter := ms.HeapAlloc
	runtime.KeepAlive(good) // the tokens are part of both measurements
	const heapSlack = 64 << 20
	t.Logf("REPORT soak heap: %.1f MiB before the gateway started, %.1f MiB after it stopped (bound +%d MiB)",
		float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20), heapSlack>>20)
	if heapAfter > heapBefore+heapSlack {
		t.Errorf("heap after the soak: %d bytes, before: %d; more than %d MiB left behind", heapAfter, heapBefore, heapSlack>>20)
	}
}

// statusTotal counts the answers with status (-1: all answers).
func (l *load) statusTotal(status int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for k, v := range l.tally {
		if status < 0 || k.status == status {
			n += v
		}
	}
	return n
}
