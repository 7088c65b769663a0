package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/metadata"
	"github.com/extauthz/extauthz/pkg/policy"
	"github.com/extauthz/extauthz/pkg/token"
)

// Policy is a validated configuration compiled for fast decisions. It is
// immutable once built, so a reload swaps a whole new Policy in atomically.
type Policy struct {
	// verifier checks this policy's tokens; nil: the engine's
	// Options.Verifier. Engine.Swap sets it, so that a reload replaces
	// both at once.
	verifier       token.Verifier
	resources      []*resource // longest path prefix first
	byName         map[string]*resource
	wellKnown      map[string][]*resource // metadata path → resources serving it
	rootMarked     []*resource            // root_metadata: true, in configuration order
	publicHost     string                 // host of public_url, lower case, no port
	unmatchedAllow bool
	// requireExplicit: the route must name the resource; the host never
	// chooses it.
	requireExplicit bool
	// foldedPrefixes: some path prefix has upper-case letters, so even a
	// lower-case path needs the case-folded routing check.
	foldedPrefixes bool
	strip          bool     // remove the inbound Authorization header
	identity       []string // subject, client id, scopes header names
}

// resource is one protected resource, compiled.
type resource struct {
	name       string
	ns         string // cache namespace: name and a digest of what verification depends on
	canonical  string
	hosts      []string // exact names, or ".suffix" for "*.suffix"
	pathPrefix string
	foldPath   bool // path_prefix matched ignoring letter case
	// forwardPreflight: CORS preflights go to the upstream rather than
	// being answered by the gateway.
	forwardPreflight bool
	issuers          map[string]struct{}
	audiences        map[string]struct{}
	required         []string
	requiredStr      string // space separated, for challenges
	metadataURL      string
	wellKnown        string
	document         []byte       // the RFC 9728 document, encoded once
	noTokenChall     string       // the challenge for a request without a token, built once
	login            bool         // browsers may sign in and use a login cookie
	mintsUpstream    bool         // an allowed request carries a minted upstream token (upstream_token)
	dpop             dpopSettings // DPoP (RFC 9449): mode, proof verifier (dpop.go)
	public           []publicPath // paths that pass without a token (public.go)
	mcpRules                      // MCP operation rules, scope hierarchy, origins

	cors corsRules // what the gateway's own answers tell browsers (cors.go)
}

// NewPolicy compiles a configuration that has passed config.Validate.
func NewPolicy(c *config.Config) (*Policy, error) {
	p := &Policy{
		byName:          make(map[string]*resource, len(c.Resources)),
		wellKnown:       make(map[string][]*resource),
		unmatchedAllow:  c.Unmatched == "allow",
		requireExplicit: c.RequireExplicitResource,
		strip:           c.StripAuthorization(),
		identity:        []string{c.Upstream.SubjectHeader, c.Upstream.ClientIDHeader, c.Upstream.ScopesHeader},
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("public_url: %w", err)
		}
		p.publicHost = strings.ToLower(u.Hostname())
	}
	comp, err := policy.NewCompiler()
	if err != nil {
		return nil, err
	}
	for i := range c.Resources {
		rc := &c.Resources[i]
		r := &resource{
			name:        rc.Name,
			canonical:   rc.Resource,
			pathPrefix:  strings.TrimSuffix(rc.PathPrefix, "/"),
			foldPath:    rc.PathCaseInsensitive,
			issuers:     make(map[string]struct{}, len(rc.AuthorizationServers)),
			audiences:   make(map[string]struct{}, 1+len(rc.Audiences)),
			required:    rc.RequiredScopes,
			requiredStr: strings.Join(rc.RequiredScopes, " "),
			metadataURL: metadata.MetadataURL(c.PublicURL, rc.Resource),
			login:       rc.Login.Enabled,
			wellKnown:   metadata.WellKnownPath(rc.Resource),
			// Any mode at all, a future one included: a resource that asks
			// for a credential is refused rather than served without it.
			mintsUpstream: rc.UpstreamToken.Mode != "",
			dpop:          compileDPoP(rc.DPoP, rc.Resource),
		}
		r.forwardPreflight = rc.Preflight == "forward"
		r.cors = compileCORS(rc.CORS)
		r.public = compilePublic(rc.Public)
		if hasUpper(r.pathPrefix) {
			p.foldedPrefixes = true
		}
		for _, h := range rc.Hosts {
			r.hosts = append(r.hosts, strings.TrimPrefix(strings.ToLower(h), "*"))
		}
		if r.mcpRules, err = compileRules(c, rc, comp); err != nil {
			return nil, fmt.Errorf("resources[%d].%w", i, err)
		}
		r.audiences[rc.Resource] = struct{}{}
		for _, a := range rc.Audiences {
			r.audiences[a] = struct{}{}
		}
		doc := metadata.ProtectedResource{
			Resource:               rc.Resource,
			ScopesSupported:        withoutOfflineAccess(rc.ScopesSupported),
			BearerMethodsSupported: []string{"header"},
			ResourceName:           rc.ResourceName,
			ResourceDocumentation:  rc.ResourceDocumentation,
		}
		if r.dpop.accepts() {
			// RFC 9728 §2 (RFC 9449): which proofs, and whether Bearer
			// tokens are refused.
			doc.DPoPSigningAlgValuesSupported = r.dpop.algs
			doc.DPoPBoundAccessTokensRequired = r.dpop.mode == config.DPoPRequired
		}
		for _, as := range rc.AuthorizationServers {
			r.issuers[as.Issuer] = struct{}{}
			doc.AuthorizationServers = append(doc.AuthorizationServers, as.Issuer)
		}
		r.document = doc.JSON()
		r.ns = cacheNamespace(c, rc)
		r.noTokenChall = r.challenge(metadata.Challenge{Scope: r.requiredStr, ResourceMetadata: r.metadataURL}, false)
		p.resources = append(p.resources, r)
		p.byName[r.name] = r
		p.wellKnown[r.wellKnown] = append(p.wellKnown[r.wellKnown], r)
		if rc.RootMetadata && r.wellKnown != metadata.WellKnownPrefix {
			p.rootMarked = append(p.rootMarked, r)
		}
	}
	sort.SliceStable(p.resources, func(i, j int) bool {
		return len(p.resources[i].pathPrefix) > len(p.resources[j].pathPrefix)
	})
	return p, nil
}

// withoutOfflineAccess drops offline_access, which a resource never
// advertises (Validate refuses it; this holds for configs built in memory).
func withoutOfflineAccess(scopes []string) []string {
	if !contains(scopes, offlineAccess) {
		return scopes
	}
	out := make([]string, 0, len(scopes)-1)
	for _, s := range scopes {
		if s != offlineAccess {
			out = append(out, s)
		}
	}
	return out
}

// documentJSON is the body of short JSON error answers.
func errorBody(code, description string) []byte {
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
	return b
}

// rpcErrorBody is a JSON-RPC 2.0 error response (§5.1): the answer MCP
// clients expect to a request refused for its shape. id is JSON text, the
// request's id or null (mcp.RequestID).
func rpcErrorBody(code int, message, id string) []byte {
	type rpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	type response struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcError        `json:"error"`
	}
	b, err := json.Marshal(response{"2.0", json.RawMessage(id), rpcError{code, message}})
	if err != nil {
		b, _ = json.Marshal(response{"2.0", json.RawMessage("null"), rpcError{code, message}})
	}
	return b
}

// cacheNamespace is where a resource's verdicts are cached: its name and a
// digest of every setting a verdict depends on (its authorization servers
// with all their settings, its audiences, the token rules). A reload that
// changes any of them moves the resource to fresh keys, so no verdict
// reached under the old trust settings is served under the new ones, on
// this replica or on any other; replicas with the same settings share keys.
func cacheNamespace(c *config.Config, rc *config.Resource) string {
	b, err := json.Marshal(struct {
		Resource  string
		Audiences []string
		Servers   []config.AuthorizationServer
		Tokens    config.Tokens
	}{rc.Resource, rc.Audiences, rc.AuthorizationServers, c.Tokens})
	if err != nil {
		// Unreachable for these plain types; fall back to the name alone.
		return rc.Name
	}
	sum := sha256.Sum256(b)
	return rc.Name + "~" + hex.EncodeToString(sum[:4])
}

// CacheNamespace returns the cache namespace of the named resource ("" if
// unknown): the namespace cache keys of its tokens are built in.
func (p *Policy) CacheNamespace(resource string) string {
	if r, ok := p.byName[resource]; ok {
		return r.ns
	}
	return ""
}
