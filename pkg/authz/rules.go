package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/policy"
	"github.com/extauthz/extauthz/pkg/token"
)

// offlineAccess is never challenged for: it asks the authorization server
// for a refresh token and is not a resource's scope.
const offlineAccess = "offline_access"

// rule is one compiled config.Rule.
type rule struct {
	method, name string
	scopes       []string
	policy       *policy.Program
}

// mcpRules is what a resource adds to the plain token check: per
// operation scopes and policies, a scope hierarchy, allowed origins. The
// zero value adds nothing and costs nothing.
type mcpRules struct {
	rules       []rule
	policy      *policy.Program
	impliedBy   map[string][]string // scope → the scopes that imply it, transitively
	origins     map[string]bool     // allowed Origin values
	anyOrigin   bool
	maxBody     int
	requireBody bool
}

// needsOperation reports whether deciding needs the MCP operation.
func (m *mcpRules) needsOperation() bool { return len(m.rules) > 0 || m.policy != nil }

// compileRules builds a resource's MCP rules from its configuration.
func compileRules(c *config.Config, rc *config.Resource, comp *policy.Compiler) (mcpRules, error) {
	m := mcpRules{maxBody: c.MCP.MaxBodyBytes, requireBody: c.MCP.RequireBody, origins: map[string]bool{}}
	var err error
	if rc.Policy != "" {
		if m.policy, err = comp.Compile(rc.Policy); err != nil {
			return m, fmt.Errorf("policy: %w", err)
		}
	}
	for i, rcfg := range rc.Rules {
		r := rule{method: rcfg.Method, name: rcfg.Name, scopes: rcfg.Scopes}
		if rcfg.Policy != "" {
			if r.policy, err = comp.Compile(rcfg.Policy); err != nil {
				return m, fmt.Errorf("rules[%d].policy: %w", i, err)
			}
		}
		m.rules = append(m.rules, r)
	}
	m.impliedBy = invertImplications(rc.ScopeImplications)
	if len(rc.AllowedOrigins) == 0 {
		// Default: the origins the resource is served from.
		for _, u := range []string{rc.Resource, c.PublicURL} {
			if o := originOf(u); o != "" {
				m.origins[o] = true
			}
		}
	}
	for _, o := range rc.AllowedOrigins {
		if o == "*" {
			m.anyOrigin = true
		}
		m.origins[o] = true
	}
	return m, nil
}

// invertImplications turns "a implies b, b implies c" into "c is implied by
// b and a, b by a": what a check needs to ask whether a granted scope
// stands for a required one.
func invertImplications(imp map[string][]string) map[string][]string {
	if len(imp) == 0 {
		return nil
	}
	out := map[string][]string{}
	for from := range imp {
		// Everything reachable from "from" is implied by it.
		seen := map[string]bool{from: true}
		stack := append([]string(nil), imp[from]...)
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[s] {
				continue
			}
			seen[s] = true
			out[s] = append(out[s], from)
			stack = append(stack, imp[s]...)
		}
	}
	return out
}

// originOf returns the serialized origin of an absolute URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// originAllowed checks a present Origin header (MCP streamable HTTP
// transport: servers must validate it, against DNS rebinding).
func (m *mcpRules) originAllowed(origin string) bool {
	if m.anyOrigin {
		return true
	}
	for i := 0; i < len(origin); i++ {
		if origin[i] >= 0x80 {
			// A serialized origin is ASCII (host names in punycode), and
			// Unicode case mapping would make "\u212A" (Kelvin) a "k".
			return false
		}
	}
	return m.origins[strings.ToLower(origin)]
}

// headerValidationSince is the first MCP revision whose servers must refuse
// a request whose Mcp-Method/Mcp-Name headers disagree with its body
// (SEP-2243). Revisions are dates, so they compare as strings.
const headerValidationSince = "2026-07-28"

// operation reads the MCP operation of a request for the rules.
func (m *mcpRules) operation(r *Request) (mcp.Operation, error) {
	if m.requireBody && r.Method == http.MethodPost && len(r.Body) == 0 {
		// Headers alone could name a harmless tool while the body calls
		// another; the operator wants the gateway to see the body.
		return mcp.Operation{}, ErrBodyRequired
	}
	in := mcp.Input{Body: r.Body}
	in.MethodHeader, in.HasMethodHeader = r.Headers["mcp-method"]
	in.NameHeader, in.HasNameHeader = r.Headers["mcp-name"]
	if r.Method == http.MethodPost && len(r.Body) == 0 && (in.HasMethodHeader || in.HasNameHeader) {
		// The headers would decide alone. They are only as good as the
		// server's check of them against the body, which MCP requires
		// from 2026-07-28 on; an older server (or a newer one answering an
		// older request by its legacy code) acts on the body whatever the
		// headers say. MCP 2026-07-28: intermediaries that enforce policy
		// on mirrored headers SHOULD reject, not trust, a request whose
		// MCP-Protocol-Version is older or absent.
		if err := headerValidating(r); err != nil {
			return mcp.Operation{}, err
		}
	}
	op, err := mcp.Extract(in, m.maxBody)
	if err == nil && op.NameMissing && m.nameMatters(op.Method) {
		// A call without the name it needs (no Mcp-Name without the body,
		// no params member in it) cannot be decided by rules that depend
		// on the name. One whose decision does not depend on it goes on:
		// the server refuses it itself (MCP 2026-07-28: -32020 for the
		// missing header; invalid params, or -32601 for a method the
		// revision removed, such as resources/subscribe).
		if len(r.Body) == 0 {
			return mcp.Operation{}, fmt.Errorf("%w: Mcp-Name missing for a method that names its target", ErrBadMCPHeader)
		}
		return mcp.Operation{}, fmt.Errorf("%w: params has no name for a method that names its target", ErrBadOperation)
	}
	switch {
	case errors.Is(err, mcp.ErrMismatch):
		return op, fmt.Errorf("%w: %v", ErrOperationMismatch, err)
	case errors.Is(err, mcp.ErrBadHeader):
		return op, fmt.Errorf("%w: %v", ErrBadMCPHeader, err)
	case errors.Is(err, mcp.ErrBadURI):
		return op, fmt.Errorf("%w: %v", ErrAmbiguousURI, err)
	case errors.Is(err, mcp.ErrNotJSON):
		return op, fmt.Errorf("%w: %v", ErrBodyNotJSON, err)
	case err != nil:
		return op, fmt.Errorf("%w: %v", ErrBadOperation, err)
	case op.Known && op.Method != "" && !op.Notification && !in.HasMethodHeader && headerValidating(r) == nil:
		// MCP 2026-07-28: Mcp-Method is required on every request (not
		// on notifications, for which the revision defines no header
		// rules). The body decides here, so this is the revision's rule
		// rather than a hole; a request that declares an older revision
		// (or none) needs no header.
		return mcp.Operation{}, ErrMethodHeader
	case !op.Known && r.Method == http.MethodPost && (len(m.rules) > 0 || m.policy != nil && m.policy.ReadsMCP()):
		if !in.HasMethodHeader && !in.HasNameHeader && len(r.Body) == 0 && headerValidating(r) == nil {
			// A 2026-07-28 client sends Mcp-Method with every request,
			// so a POST of its without one is a notification (the SDK
			// posts notifications/cancelled that way), which no rule
			// is for; were it a request after all, its server must
			// refuse it for the missing header (400, -32020). It is
			// decided without an operation: the resource's scopes and
			// policy, mcp.method "".
			return op, nil
		}
		// A JSON-RPC request whose method cannot be known: the rules, or
		// a policy that reads the operation, cannot be applied (the
		// policy would see mcp.name == "" for a call it never saw), so it
		// cannot be allowed.
		return op, ErrUnknownOperation
	}
	return op, nil
}

// nameMatters reports whether deciding an operation of method depends on
// its name: a rule for the method names one (any pattern but "*", which
// matches every name and none), or a policy may read it (a rule's
// policy, or the resource's when it reads the operation).
func (m *mcpRules) nameMatters(method string) bool {
	if m.policy != nil && m.policy.ReadsMCP() {
		return true
	}
	for i := range m.rules {
		rl := &m.rules[i]
		if mcp.Match(rl.method, method) && (rl.name != "*" || rl.policy != nil) {
			return true
		}
	}
	return false
}

// headerValidating returns nil when the request declares a protocol
// revision whose servers check Mcp-* headers against the body
// (MCP-Protocol-Version 2026-07-28 or later), ErrUntrustedHeaders when it
// declares an older one or none, and ErrBadProtocolVersion when the header
// is not a revision. It does not allocate.
func headerValidating(r *Request) error {
	v, ok := r.Headers["mcp-protocol-version"]
	if !ok {
		return ErrUntrustedHeaders
	}
	v = strings.Trim(v, " \t")
	if !isRevision(v) {
		return ErrBadProtocolVersion
	}
	if v < headerValidationSince {
		return ErrUntrustedHeaders
	}
	return nil
}

// isRevision reports whether v is an MCP protocol revision: a date written
// YYYY-MM-DD (month 01-12, day 01-31).
func isRevision(v string) bool {
	if len(v) != len("2006-01-02") || v[4] != '-' || v[7] != '-' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if i != 4 && i != 7 && (v[i] < '0' || v[i] > '9') {
			return false
		}
	}
	month, day := v[5:7], v[8:10]
	return month >= "01" && month <= "12" && day >= "01" && day <= "31"
}

// needed returns every scope an operation needs: the resource's, then
// those of each matching rule, once each, and the matching rules.
func (m *mcpRules) needed(required []string, op mcp.Operation) ([]string, []*rule) {
	if len(m.rules) == 0 {
		return required, nil
	}
	var matched []*rule
	out := required
	for i := range m.rules {
		rl := &m.rules[i]
		if !op.Known || !mcp.Match(rl.method, op.Method) || !mcp.Match(rl.name, op.Name) {
			continue
		}
		matched = append(matched, rl)
		for _, s := range rl.scopes {
			if !contains(out, s) {
				if len(out) == len(required) {
					out = append([]string(nil), required...) // never append into the config's slice
				}
				out = append(out, s)
			}
		}
	}
	return out, matched
}

// missing returns the first needed scope that granted lacks, counting the
// scopes each granted one implies.
func (m *mcpRules) missing(needed, granted []string) string {
next:
	for _, s := range needed {
		if contains(granted, s) {
			continue
		}
		for _, by := range m.impliedBy[s] {
			if contains(granted, by) {
				continue next
			}
		}
		return s
	}
	return ""
}

// challengeScope is the scope parameter of an insufficient_scope
// challenge: every scope the operation needs, then the ones already
// granted, because clients replace their scope set with the challenge
// rather than add to it. offline_access is never challenged for.
func challengeScope(needed, granted []string) string {
	all := make([]string, 0, len(needed)+len(granted))
	for _, s := range needed {
		if s != offlineAccess && !contains(all, s) {
			all = append(all, s)
		}
	}
	for _, s := range granted {
		if s != offlineAccess && !contains(all, s) {
			all = append(all, s)
		}
	}
	return strings.Join(all, " ")
}

// evaluate runs the resource's policy and those of the matching rules. A
// policy that is false, or fails, denies.
func (m *mcpRules) evaluate(ctx context.Context, r *Request, host, path string, op mcp.Operation, c *token.Claims, matched []*rule) error {
	if m.policy == nil && !anyPolicy(matched) {
		return nil
	}
	in := &policy.Input{
		Token:   policy.Token{Sub: c.Subject, Iss: c.Issuer, ClientID: c.ClientID, Aud: c.Audience, Scopes: c.Scopes, Exp: c.Expiry, Claims: c.Extra},
		Request: policy.Request{Method: r.Method, Host: host, Path: path, Headers: r.Headers},
		MCP:     policy.MCP{Method: op.Method, Name: op.Name},
	}
	run := func(p *policy.Program) error {
		ok, err := p.Eval(ctx, in)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %v", ErrPolicyFailed, err)
		case !ok:
			return ErrPolicyDenied
		}
		return nil
	}
	if m.policy != nil {
		if err := run(m.policy); err != nil {
			return err
		}
	}
	for _, rl := range matched {
		if rl.policy != nil {
			if err := run(rl.policy); err != nil {
				return err
			}
		}
	}
	return nil
}

func anyPolicy(rs []*rule) bool {
	for _, r := range rs {
		if r.policy != nil {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
