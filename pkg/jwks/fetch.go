package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const maxRedirects = 5

// fetch makes one attempt: locate the URL, GET it, index the keys. It
// returns the refresh interval the response asks for.
func (s *Source) fetch(ctx context.Context) (*keySet, time.Duration, error) {
	s.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	u, err := s.locate(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: locating the JWKS URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: building request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: fetching key set: %w", err)
	}
	defer resp.Body.Close()
	where := req.URL.Redacted()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("jwks: GET %s: status %s", where, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("jwks: GET %s: reading body: %w", where, err)
	}
	if int64(len(body)) > s.maxBytes {
		return nil, 0, fmt.Errorf("jwks: GET %s: body exceeds %d bytes", where, s.maxBytes)
	}
	ks, err := buildKeySet(body, s.log)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (from %s)", err, where)
	}
	next := refreshInterval(resp.Header.Values("Cache-Control"), s.minRefresh, s.maxRefresh)
	s.log.Debug("jwks: fetched key set", "url", where, "keys", ks.count, "next_refresh", next)
	return ks, next, nil
}

// checkRedirect follows a redirect only to https, or from loopback http to
// loopback http. A plain-http hop elsewhere would let anyone on the path
// substitute the keys, and so forge any token.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("jwks: stopped after %d redirects", maxRedirects)
	}
	if req.URL.Scheme == "https" {
		return nil
	}
	if req.URL.Scheme == "http" && isLoopbackHTTP(via[0].URL) && isLoopbackHTTP(req.URL) {
		return nil
	}
	return fmt.Errorf("jwks: refusing redirect to %s: not https", req.URL.Redacted())
}

func isLoopbackHTTP(u *url.URL) bool {
	if u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// refreshInterval turns a response's Cache-Control header values into the
// time until the next scheduled fetch, clamped to [lo, hi]. no-store and
// no-cache mean the issuer wants us to check often, so lo; no max-age means
// hi. When max-age repeats, the first wins (RFC 9111 §4.2.1); a malformed
// max-age is ignored.
func refreshInterval(cacheControl []string, lo, hi time.Duration) time.Duration {
	maxAge := time.Duration(-1)
	for _, line := range cacheControl {
		for d := range strings.SplitSeq(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return lo
			case "max-age":
				if maxAge >= 0 {
					continue
				}
				if v, ok := parseDeltaSeconds(value); ok {
					maxAge = v
				}
			}
		}
	}
	if maxAge < 0 {
		return hi
	}
	return min(max(maxAge, lo), hi)
}

// parseDeltaSeconds parses RFC 9111 delta-seconds, accepting the quoted
// form recipients are asked to tolerate. Values too large for a Duration
// saturate, as the RFC asks for overly large values.
func parseDeltaSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	const maxSeconds = int64(1<<63-1) / int64(time.Second)
	if err != nil || n > maxSeconds {
		n = maxSeconds
	}
	return time.Duration(n) * time.Second, true
}
