package telemetry

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/logging"
	"github.com/extauthz/extauthz/pkg/token"
)

// auditMemo keeps the parts of audit lines that repeat, encoded (quoted,
// scrubbed, redacted) once: at the default setting every request writes a
// line, and most requests are hits of a token seen before, for one of a
// few resources. Three tables, each a fixed number of slots (a table full
// of other entries costs an encoding and an allocation, never memory):
//
//   - head: the fields before the latency (headFields), by everything
//     they are made of; a slot is chosen by the status and the lengths
//     of the strings, and its entry is used only when every part is
//     equal.
//   - operation: the MCP method and name (operationFields), by their
//     text; a slot is chosen by their lengths. Requests name new tools
//     at will: each new pair costs an encoding and an allocation.
//   - identity: the subject, client and issuer (identityFields), by the
//     subject's text and the token's Grant. The tiers hand out Grants
//     interned (one object per distinct grant, never changed), so the
//     same Grant means the same client and issuer; a Claims itself is
//     rebuilt by the in-process tier on every hit, and its subject text
//     copied, so it is compared as text (a copy is kept: never the
//     tier's own bytes). A slot is chosen by a hash of the subject.
//
// Slots are replaced whole (atomic pointers to entries never changed), so
// concurrent lines read either the old entry or the new one.
type auditMemo struct {
	seed       maphash.Seed // of the identity table's slots
	heads      [64]atomic.Pointer[headEntry]
	identities [256]atomic.Pointer[identityEntry]
	operations [64]atomic.Pointer[operationEntry]
}

// operationEntry is operationFields of a method and name, which come from
// the request: an entry holds copies, never the request's own bytes.
type operationEntry struct {
	method, name string
	f            logging.Fragment
}

type headEntry struct {
	allow     bool
	status    int
	reason    authz.Reason
	resource  string
	transport string
	source    authz.Source
	f         logging.Fragment
}

type identityEntry struct {
	subject string
	grant   *token.Grant
	f       logging.Fragment
}

// head returns headFields of d as a Fragment.
func (m *auditMemo) head(transport string, d *authz.Decision) logging.Fragment {
	i := (uint(d.Status)*31 + uint(len(d.Resource))*7 + uint(len(d.Reason))*3 + uint(len(d.Source)) + uint(len(transport))) % uint(len(m.heads))
	if e := m.heads[i].Load(); e != nil && e.allow == d.Allow && e.status == d.Status && e.reason == d.Reason &&
		e.source == d.Source && e.transport == transport && e.resource == d.Resource {
		return e.f
	}
	e := &headEntry{allow: d.Allow, status: d.Status, reason: d.Reason, resource: d.Resource, transport: transport, source: d.Source}
	e.f = logging.Encode(func(l *logging.Line) { headFields(&auditSink{line: l}, transport, d) })
	m.heads[i].Store(e)
	return e.f
}

// identity returns identityFields of c as a Fragment.
func (m *auditMemo) identity(c *token.Claims) logging.Fragment {
	i := maphash.String(m.seed, c.Subject) % uint64(len(m.identities))
	if e := m.identities[i].Load(); e != nil && e.grant == c.Grant && e.subject == c.Subject {
		return e.f
	}
	e := &identityEntry{subject: strings.Clone(c.Subject), grant: c.Grant}
	e.f = logging.Encode(func(l *logging.Line) { identityFields(&auditSink{line: l}, c) })
	m.identities[i].Store(e)
	return e.f
}

// operation returns operationFields of method and name as a Fragment.
func (m *auditMemo) operation(method, name string) logging.Fragment {
	i := (uint(len(method))*7 + uint(len(name))) % uint(len(m.operations))
	if e := m.operations[i].Load(); e != nil && e.method == method && e.name == name {
		return e.f
	}
	e := &operationEntry{method: strings.Clone(method), name: strings.Clone(name)}
	e.f = logging.Encode(func(l *logging.Line) { operationFields(&auditSink{line: l}, e.method, e.name) })
	m.operations[i].Store(e)
	return e.f
}
