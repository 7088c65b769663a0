package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/extauthz/extauthz/pkg/jwks"
)

// WellKnownConfiguration is the well-known name of a transmitter's
// configuration document (SSF 1.0).
const WellKnownConfiguration = "/.well-known/ssf-configuration"

// maxConfigurationBytes bounds a configuration document; real ones are a
// few KiB.
const maxConfigurationBytes = 1 << 20

// ConfigurationURL is where a transmitter publishes its configuration:
// the well-known name inserted between the issuer's host and its path
// (SSF 1.0), so https://tr.example.com/tenant1 publishes at
// https://tr.example.com/.well-known/ssf-configuration/tenant1.
func ConfigurationURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("issuer %s is not an absolute URL", quote(issuer))
	}
	return u.Scheme + "://" + u.Host + WellKnownConfiguration + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// configuration is the part of a transmitter's configuration document
// (SSF 1.0) the receiver reads.
type configuration struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// jwksLocator gives a transmitter's JWKS URL: configured, else read from
// its configuration document at every key fetch (an hourly refresh, or a
// rate-limited refetch for an unknown kid), so a moved key set is
// followed. When the document cannot be read, the last URL it gave is
// used: the keys' own fetch decides whether they are still there.
func jwksLocator(issuer, jwksURI, configURL string, client *http.Client, log *slog.Logger) jwks.Locator {
	if jwksURI != "" {
		return func(context.Context) (string, error) { return jwksURI, nil }
	}
	var mu sync.Mutex
	last := ""
	return func(ctx context.Context) (string, error) {
		u, err := fetchConfiguration(ctx, client, issuer, configURL)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if last != "" {
				log.Warn("ssf: transmitter configuration unavailable; using its last jwks_uri", "err", err)
				return last, nil
			}
			return "", err
		}
		last = u
		return u, nil
	}
}

// fetchConfiguration reads a transmitter's configuration document and
// returns its jwks_uri. The document's issuer must be the configured one,
// exactly: a document naming another issuer would let one transmitter's
// keys sign for another (as RFC 8414 §3.3 says of OAuth metadata).
// Redirects are not followed.
func fetchConfiguration(ctx context.Context, client *http.Client, issuer, configURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, configURL, nil)
	if err != nil {
		return "", fmt.Errorf("ssf configuration %s: %w", configURL, err)
	}
	req.Header.Set("Accept", "application/json")
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("ssf configuration: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("ssf configuration %s: status %d", configURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigurationBytes+1))
	if err != nil {
		return "", fmt.Errorf("ssf configuration %s: %w", configURL, err)
	}
	if len(body) > maxConfigurationBytes {
		return "", fmt.Errorf("ssf configuration %s: larger than 1 MiB", configURL)
	}
	var doc configuration
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("ssf configuration %s: invalid JSON", configURL)
	}
	switch {
	case doc.Issuer != issuer:
		return "", fmt.Errorf("ssf configuration %s names issuer %s, not %s", configURL, quote(doc.Issuer), issuer)
	case doc.JWKSURI == "":
		return "", fmt.Errorf("ssf configuration %s has no jwks_uri (set jwks_uri)", configURL)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || !u.IsAbs() || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHTTP(configURL))) {
		return "", errors.New("ssf configuration: jwks_uri must be an absolute https URL")
	}
	return doc.JWKSURI, nil
}

// loopbackHTTP reports whether raw is a plain-http URL on a loopback
// host: a transmitter on the same machine during development, whose key
// set may be plain http too.
func loopbackHTTP(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	switch h := u.Hostname(); {
	case h == "localhost", strings.HasPrefix(h, "127."), h == "::1":
		return true
	}
	return false
}
