package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Limits enforced by Validate beyond those the struct tags state.
const (
	maxLeeway       = 5 * time.Minute
	maxRedisDB      = 1023 // the path of cache.redis_url; cache.redis.db's tag says the same
	maxRedisTimeout = time.Second
)

// Messages shared by several keys, so that one rule always reads the same.
const (
	msgRequired    = "required"
	msgNotEmpty    = "must not be empty"
	msgPositive    = "must be greater than 0"
	msgNonNegative = "must not be negative"
	msgHTTPS       = "must be an absolute https URL (http is allowed only for localhost and loopback addresses)"
	msgBothSources = "set env or file, not both"
	msgNoRedis     = "is set but no Redis is configured (set cache.redis_url, cache.redis.sentinel or cache.redis.cluster)"
)

// checker collects problems; Validate reports all of them, never just the first.
type checker struct{ errs Errors }

func (ch *checker) add(path, format string, args ...any) {
	ch.errs = append(ch.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every problem with the configuration as Errors, each
// naming its key path, or returns nil. It checks values, not presence, so
// call ApplyDefaults first (Parse does). It never modifies c.
//
// The rules on one key that the struct tags state (bounds, enums, ...)
// are enforced from the tags (checkTags); the checks below are the rest:
// rules relating keys to one another, and rules the schema cannot state.
func (c *Config) Validate() error {
	var ch checker
	c.validateListen(&ch)
	if c.PublicURL != "" {
		for _, msg := range checkWebURL(c.PublicURL, urlOrigin) {
			ch.add("public_url", "%s", msg)
		}
	}
	c.Cache.validate(&ch)
	validateSecret(&ch, "admin.token", c.Admin.Token)
	c.GRPC.validate(&ch)
	c.JWKS.validate(&ch)
	c.Tokens.validate(&ch)
	c.Upstream.validate(&ch)
	c.validateResources(&ch)
	c.validateLogin(&ch)
	c.validateUpstreamTokens(&ch)
	c.validateDPoP(&ch)
	c.Revocation.validate(&ch)
	c.validateSSF(&ch)
	c.validateFacade(&ch)
	c.validateExtProc(&ch)
	errs := mergeTagErrors(checkTags(c), ch.errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func validateSecret(ch *checker, path string, s Secret) {
	if s.Env != "" && s.File != "" {
		ch.add(path, msgBothSources)
	}
}

func positive(ch *checker, path string, d Duration) {
	if d <= 0 {
		ch.add(path, msgPositive)
	}
}

// firsts finds repeated list entries in linear time: a generated file with
// thousands of hosts should not make check-config quadratic.
type firsts map[string]int

// add records v at index i, or reports the index where v was first seen.
func (f firsts) add(v string, i int) (first int, dup bool) {
	if j, ok := f[v]; ok {
		return j, true
	}
	f[v] = i
	return i, false
}

// urlRule selects what checkWebURL allows beyond an absolute https URL.
type urlRule int

const (
	urlOrigin    urlRule = iota // public_url: scheme://host[:port], at most a "/" path
	urlEndpoint                 // issuer, jwks_uri: any path
	urlCanonical                // resource: any path, canonical (lower-case) scheme and host
)

// checkWebURL returns every problem with raw as a URL that clients or the
// gateway will use: absolute, https (http only on loopback, for local
// development, as OAuth 2.1 and MCP allow), no credentials, no query or
// fragment.
func checkWebURL(raw string, rule urlRule) []string {
	u, err := url.Parse(raw)
	if err != nil {
		// The inner error, because url.Error repeats the whole URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			return []string{"must be a valid URL: " + ue.Err.Error()}
		}
		return []string{"must be a valid URL"}
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return []string{msgHTTPS}
	}
	var msgs []string
	if u.Scheme != "https" && (u.Scheme != "http" || !IsLoopbackHost(u.Hostname())) {
		msgs = append(msgs, msgHTTPS)
	}
	if u.User != nil {
		msgs = append(msgs, "must not contain a user name or password")
	}
	if rule == urlCanonical {
		// url.Parse lower-cases the scheme, so look at the text itself.
		if raw[:len(u.Scheme)] != u.Scheme || u.Host != strings.ToLower(u.Host) {
			msgs = append(msgs, "scheme and host must be lower case (canonical form)")
		}
		if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
			msgs = append(msgs, "must not include the default port (canonical form)")
		}
	}
	if rule == urlOrigin && u.Path != "" && u.Path != "/" {
		msgs = append(msgs, "must not have a path (only scheme://host[:port])")
	}
	if u.RawQuery != "" || u.ForceQuery {
		msgs = append(msgs, "must not have a query")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		msgs = append(msgs, "must not have a fragment")
	}
	return msgs
}

// IsLoopbackHost reports whether host (a host name or IP address, without
// port; brackets around an IPv6 address are allowed) names this machine:
// localhost, a *.localhost name (RFC 6761 reserves them), 127.0.0.0/8 or
// ::1. Plain http is allowed only to such hosts.
func IsLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "localhost" || (strings.HasSuffix(h, ".localhost") && len(h) > len(".localhost")) {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostProblem returns what is wrong with a resources[].hosts entry, or "".
func hostProblem(h string) string {
	if h == "" {
		return msgNotEmpty
	}
	lower := strings.ToLower(h)
	name, _ := strings.CutPrefix(lower, "*.")
	if net.ParseIP(lower) == nil && !isHostname(name) {
		return `must be a host name, an IP address or "*.suffix", with no scheme, port or path`
	}
	if h != lower {
		return "must be lower case"
	}
	return ""
}

// isHostname reports whether s is a lower-case DNS name (RFC 1123 labels).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// isResourceName matches ^[a-z0-9][a-z0-9_-]*$: names appear in metric
// labels and Envoy context_extensions, so they stay plain.
func isResourceName(s string) bool {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// isScopeToken matches RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c != 0x21 && (c < 0x23 || c > 0x5B) && (c < 0x5D || c > 0x7E) {
			return false
		}
	}
	return s != ""
}

// isToken matches an RFC 9110 §5.6.2 token, the syntax of a header name.
func isToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}
