package authz

import (
	"context"
	"time"

	"github.com/extauthz/extauthz/pkg/mcp"
	"github.com/extauthz/extauthz/pkg/policy"
)

// Caller is what a decision made away from the request knows about who
// made it: the verified token's standard claims, as the Check's dynamic
// metadata carries them. It holds no kept claims and no request.
type Caller struct {
	Issuer, Subject, ClientID string
	Scopes, Audience          []string
	Expiry                    time.Time
}

// Listing says how a resource's listings can be filtered.
type Listing struct {
	Found bool // the policy has a resource of that name
	// Filters: the resource has MCP rules or a policy that reads the
	// operation, so some operations may be allowed and others not; without
	// them every operation of an allowed caller is allowed.
	Filters bool
}

// Listing reports whether resource exists and whether its rules can tell
// one operation from another.
func (p *Policy) Listing(resource string) Listing {
	res := p.byName[resource]
	if res == nil {
		return Listing{}
	}
	return Listing{Found: true, Filters: len(res.rules) > 0 || res.policy != nil && res.policy.ReadsMCP()}
}

// WouldAllow reports whether the resource's rules would let the caller
// perform the operation method on name (a tool or prompt name, a resource
// URI), for listing filters: the caller's token already passed the Check
// of the listing request, so only what depends on the operation is asked
// again — the scopes of the matching rules, with the resource's scope
// implications, and the policies that read the operation.
//
// decidable is false when the answer needs what only a real request of
// that operation would carry: a policy that reads the request or the
// token's kept claims (policy.Program.ReadsRequest). allowed is then
// false. A resource policy that does not read the operation is not asked:
// it gave the same answer to the listing request, which passed. A resource
// URI that cannot be canonicalised, an unknown resource and a policy that
// fails are decidable denials, as they would be at a Check.
func (p *Policy) WouldAllow(ctx context.Context, resource string, c *Caller, method, name string) (allowed, decidable bool) {
	res := p.byName[resource]
	if res == nil || c == nil {
		return false, true
	}
	if method == "resources/read" {
		u, err := mcp.CanonicalURI(name)
		if err != nil {
			return false, true
		}
		name = u
	}
	op := mcp.Operation{Method: method, Name: name, Known: true}
	needed, matched := res.needed(res.required, op)
	if res.missing(needed, c.Scopes) != "" {
		return false, true
	}
	var progs []*policy.Program
	if res.policy != nil && res.policy.ReadsMCP() {
		progs = append(progs, res.policy)
	}
	for _, rl := range matched {
		if rl.policy != nil {
			progs = append(progs, rl.policy)
		}
	}
	if len(progs) == 0 {
		return true, true
	}
	for _, pr := range progs {
		if pr.ReadsRequest() {
			return false, false
		}
	}
	in := &policy.Input{
		Token: policy.Token{Sub: c.Subject, Iss: c.Issuer, ClientID: c.ClientID, Aud: c.Audience, Scopes: c.Scopes, Exp: c.Expiry},
		MCP:   policy.MCP{Method: method, Name: name},
	}
	for _, pr := range progs {
		if ok, err := pr.Eval(ctx, in); err != nil || !ok {
			return false, true
		}
	}
	return true, true
}
