package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/html"

	"github.com/extauthz/extauthz/internal/redistest"
	"github.com/extauthz/extauthz/pkg/check"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/devissuer"
)

// statusDoc is the status page as a browser receives it.
type statusDoc struct {
	header http.Header
	body   string
	root   *html.Node
}

func getStatus(t *testing.T, adminAddr, path string) statusDoc {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	root, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("the page does not parse as HTML: %v", err)
	}
	return statusDoc{header: resp.Header, body: string(b), root: root}
}

// find returns the first element for which match holds, nil if none.
func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

// findAll returns every element for which match holds.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if n.Type == html.ElementNode && match(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findAll(c, match)...)
	}
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

// text is an element's text, whitespace collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// byID is the text of the element with id, failing the test when absent.
func (d statusDoc) byID(t *testing.T, id string) string {
	t.Helper()
	n := find(d.root, func(n *html.Node) bool { return attr(n, "id") == id })
	if n == nil {
		t.Fatalf("the page has no element #%s", id)
	}
	return text(n)
}

// number reads the element #id as an integer.
func (d statusDoc) number(t *testing.T, id string) int64 {
	t.Helper()
	s := d.byID(t, id)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("#%s is %q, not a number", id, s)
	}
	return n
}

// table reads the rows of the table #id as first cell → second cell.
func (d statusDoc) table(t *testing.T, id string) map[string]string {
	t.Helper()
	tbl := find(d.root, func(n *html.Node) bool { return attr(n, "id") == id })
	if tbl == nil {
		t.Fatalf("the page has no #%s", id)
	}
	out := map[string]string{}
	for _, tr := range findAll(tbl, func(n *html.Node) bool { return n.Data == "tr" }) {
		cells := findAll(tr, func(n *html.Node) bool { return n.Data == "td" })
		if len(cells) >= 2 {
			out[text(cells[0])] = text(cells[1])
		}
	}
	return out
}

// checkNoHeader sends a Check without any credential.
func (in *instance) checkNoHeader(t *testing.T) int {
	t.Helper()
	req, err := check.EnvoyRequest{Method: "POST", URL: sharedResource}.Proto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := in.client.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// TestStatusPage drives a gateway with Redis through allowed, cached,
// denied and revoked Checks, then reads its admin status page as a browser
// would: every figure is the one the traffic produced and the one /metrics
// serves, the page loads nothing from anywhere, and no token or subject
// appears on it.
func TestStatusPage(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	in := startInstance(t, srv.Addr(), iss)
	waitRevocationSubscribers(t, srv.Addr(), 1)
	const subject, revokedSubject = "alice-status-subject", "mallory-status-subject"

	alice := mintFor(t, iss, subject, time.Time{})
	for i := range 2 { // verified, then a local hit
		if st, _ := in.decide(t, alice); st != 200 {
			t.Fatalf("alice's Check %d: %d", i, st)
		}
	}
	for range 3 {
		if st := in.checkNoHeader(t); st != 401 {
			t.Fatalf("no credential: %d", st)
		}
	}
	for range 2 {
		if st, _ := in.decide(t, "garbage.token.status"); st != 401 {
			t.Fatalf("garbage: %d", st)
		}
	}
	expired, err := iss.Mint(devissuer.Token{Subject: subject, Scopes: []string{"mcp:tools"}, IssuedAt: time.Now().Add(-2 * time.Hour), TTL: -time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := in.decide(t, expired); st != 401 {
		t.Fatalf("expired: %d", st)
	}
	mallory := mintFor(t, iss, revokedSubject, time.Now().Add(-time.Minute))
	if st, _, _, raw := in.revoke(t, adminToken, map[string]string{"sub": revokedSubject}); st != 200 {
		t.Fatalf("POST /revocations: %d %s", st, raw)
	}
	if st, ch := in.decide(t, mallory); !revokedAnswer(st, ch) {
		t.Fatalf("mallory after the revocation: %d %s", st, ch)
	}

	admin := in.app.lnAdmin.Addr().String()
	page := getStatus(t, admin, "/")
	mf := scrapeAddr(t, admin)

	t.Run("headers", func(t *testing.T) {
		if ct := page.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		csp := page.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("Content-Security-Policy %q: want default-src 'none' and nothing unsafe", csp)
		}
		// The one stylesheet is the one the policy allows, by digest.
		styles := findAll(page.root, func(n *html.Node) bool { return n.Data == "style" })
		if len(styles) != 1 {
			t.Fatalf("%d style elements, want 1", len(styles))
		}
		sum := sha256.Sum256([]byte(styles[0].FirstChild.Data))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "style-src "+want) {
			t.Errorf("the CSP %q does not allow the page's own style (%s): the browser would render it bare", csp, want)
		}
		if cc := page.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	})

	t.Run("nothing loaded from anywhere", func(t *testing.T) {
		for _, n := range findAll(page.root, func(n *html.Node) bool {
			return n.Data == "script" || n.Data == "img" || n.Data == "link" || n.Data == "iframe" || n.Data == "form" || attr(n, "style") != "" || attr(n, "src") != "" || attr(n, "href") != ""
		}) {
			t.Errorf("the page has <%s %v>", n.Data, n.Attr)
		}
	})

	t.Run("never a token or a subject", func(t *testing.T) {
		for _, secret := range []string{alice, expired, mallory, subject, revokedSubject, "garbage.token.status", adminToken} {
			if strings.Contains(page.body, secret) {
				t.Errorf("the page shows %q", secret)
			}
		}
	})

	t.Run("figures", func(t *testing.T) {
		if got := page.number(t, "allowed"); got != 2 {
			t.Errorf("allowed %d, want 2", got)
		}
		if got := page.number(t, "denied"); got != 7 {
			t.Errorf("denied %d, want 7", got)
		}
		want := map[string]string{"no_credential": "3", "malformed": "2", "expired": "1", "revoked": "1"}
		if got := page.table(t, "recent-denials"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("recent denials %v, want %v", got, want)
		}
		if got, want := page.byID(t, "config-digest"), configDigest(in.app.cfg); got != want || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(got) {
			t.Errorf("config digest %q, want %q", got, want)
		}
		if got := page.byID(t, "version"); got != versionString() {
			t.Errorf("version %q, want %q", got, versionString())
		}
		if got := page.number(t, "watermarks"); got != 1 {
			t.Errorf("watermarks %d, want 1", got)
		}
		if got := page.byID(t, "redis-ping"); !strings.HasPrefix(got, "answered in") {
			t.Errorf("Redis PING: %q", got)
		}
		if got := page.byID(t, "redis-circuit"); got != "closed" {
			t.Errorf("Redis circuit: %q", got)
		}
		// The issuer's row: its key id, its keys fetched.
		issuers := findAll(page.root, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "issuer") })
		if len(issuers) != 1 {
			t.Fatalf("%d issuer rows, want 1", len(issuers))
		}
		row := text(issuers[0])
		if !strings.Contains(row, iss.Issuer()) || !strings.Contains(row, iss.ActiveKID()) || !strings.Contains(row, "ready") || !strings.Contains(row, "ago") {
			t.Errorf("issuer row %q: want the issuer, its kid %s, ready, and the key set's age", row, iss.ActiveKID())
		}
	})

	t.Run("the same figures as /metrics", func(t *testing.T) {
		for _, tier := range []string{"local", "redis"} {
			row := find(page.root, func(n *html.Node) bool { return attr(n, "id") == "tier-"+tier })
			if row == nil {
				t.Fatalf("no row for tier %s", tier)
			}
			cells := findAll(row, func(n *html.Node) bool { return n.Data == "td" })
			hits, _ := value(mf, "extauthz_cache_lookups_total", map[string]string{"tier": tier, "result": "hit"})
			misses, _ := value(mf, "extauthz_cache_lookups_total", map[string]string{"tier": tier, "result": "miss"})
			want := []string{tier, ratio(int64(hits), int64(hits+misses)), fmt.Sprint(hits), fmt.Sprint(misses)}
			var got []string
			for _, c := range cells {
				got = append(got, text(c))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("tier %s: %v, want %v (from /metrics)", tier, got, want)
			}
			if tier == "local" && hits < 1 {
				t.Errorf("no local hit, though alice's second Check was one")
			}
		}
		for id, decision := range map[string]string{"allowed": "allow", "denied": "deny"} {
			v, _ := value(mf, "extauthz_check_decisions_total", map[string]string{"decision": decision})
			if got := page.number(t, id); float64(got) != v {
				t.Errorf("#%s %d, /metrics %v", id, got, v)
			}
		}
	})

	t.Run("at /status too", func(t *testing.T) {
		if got := getStatus(t, admin, "/status").number(t, "allowed"); got != 2 {
			t.Errorf("/status: allowed %d", got)
		}
	})
}

// scrapeAddr reads /metrics from an admin listener.
func scrapeAddr(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	return (&served{admin: admin}).scrape(t)
}

// TestStatusPageFollowsReloads: the digest and the reload figures follow
// the file, a refused file included.
func TestStatusPageFollowsReloads(t *testing.T) {
	iss, _ := startIssuer(t, obsResource)
	path := filepath.Join(t.TempDir(), "extauthz.yaml")
	if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:tools")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveFile(t, path)
	before := getStatus(t, s.admin, "/")
	want, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := before.byID(t, "config-digest"); got != configDigest(want) {
		t.Errorf("digest %s, want %s", got, configDigest(want))
	}
	if got := before.byID(t, "version"); got == "" {
		t.Error("no version")
	}

	if err := os.WriteFile(path, []byte(obsConfig(iss, "mcp:admin")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return getStatus(t, s.admin, "/").number(t, "reloads-ok") == 1 })
	after := getStatus(t, s.admin, "/")
	if want, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	if got := after.byID(t, "config-digest"); got != configDigest(want) || got == before.byID(t, "config-digest") {
		t.Errorf("after the reload: digest %s, want %s (and not the old one)", got, configDigest(want))
	}
	if got := after.byID(t, "reload-state"); !strings.HasPrefix(got, "succeeded") {
		t.Errorf("reload state %q", got)
	}

	if err := os.WriteFile(path, []byte("resources: [}"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool { return getStatus(t, s.admin, "/").number(t, "reloads-failed") == 1 })
	refused := getStatus(t, s.admin, "/")
	if got := refused.byID(t, "reload-state"); !strings.HasPrefix(got, "refused") {
		t.Errorf("after a bad file, reload state %q", got)
	}
	if got := refused.byID(t, "config-digest"); got != configDigest(want) {
		t.Errorf("after a bad file the digest changed to %s: the running config did not", got)
	}
}

// TestRecentDenialsWindow: recent denials count from the oldest mark within
// the window, the process's start while it is younger.
func TestRecentDenialsWindow(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &statusPage{marks: []denialMark{{at: t0, counts: map[string]float64{}}}}
	if b := p.baseline(); !b.at.Equal(t0) {
		t.Fatalf("baseline %v, want the start", b.at)
	}
	for m := 1; m <= 20; m++ {
		p.mark(t0.Add(time.Duration(m)*time.Minute), map[string]float64{"expired": float64(m)})
	}
	b := p.baseline()
	if want := t0.Add(5 * time.Minute); !b.at.Equal(want) || b.counts["expired"] != 5 {
		t.Errorf("baseline %v %v, want %v with 5 expired", b.at, b.counts, want)
	}
	if len(p.marks) != 16 {
		t.Errorf("%d marks kept, want 16 (a quarter of an hour of minutes, both ends)", len(p.marks))
	}
}

// TestStatusPageRedisDown: with Redis gone, the page says so.
func TestStatusPageRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	iss, _ := startIssuer(t, sharedResource)
	in := startInstance(t, srv.Addr(), iss)
	admin := in.app.lnAdmin.Addr().String()
	if got := getStatus(t, admin, "/").byID(t, "redis-ping"); !strings.HasPrefix(got, "answered in") {
		t.Fatalf("Redis up: %q", got)
	}
	srv.Stop()
	if got := getStatus(t, admin, "/").byID(t, "redis-ping"); !strings.HasPrefix(got, "no answer within 1s: ") {
		t.Errorf("Redis stopped: %q, want no answer", got)
	}
}
