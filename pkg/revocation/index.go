package revocation

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/pkg/token"
)

// Observer is told what revocation does, for the metrics. Its methods
// must be cheap: RefusedByWatermark runs on the decision path.
type Observer interface {
	// Revocation counts one watermark revoked through this replica, by
	// the kind of its source: "admin", "ssf" or "other".
	Revocation(source string)
	// WatermarkLive reports a watermark that has just started refusing
	// tokens on this replica, delay after its EventTime.
	WatermarkLive(source string, delay time.Duration)
	// RefusedByWatermark counts one token refused by a watermark.
	RefusedByWatermark()
}

// NopObserver observes nothing.
type NopObserver struct{}

// Revocation implements Observer.
func (NopObserver) Revocation(string) {}

// WatermarkLive implements Observer.
func (NopObserver) WatermarkLive(string, time.Duration) {}

// RefusedByWatermark implements Observer.
func (NopObserver) RefusedByWatermark() {}

// sourceKind is the metric label of a watermark's Source: bounded, unlike
// the transmitter's issuer it may name.
func sourceKind(source string) string {
	switch {
	case source == "admin":
		return "admin"
	case strings.HasPrefix(source, "ssf:"):
		return "ssf"
	}
	return "other"
}

// maxSelectorBytes bounds each selector of a watermark: they are stored
// in Redis and sent to every replica, and no identifier is this long.
const maxSelectorBytes = 4096

// ErrNoSelector means a watermark names no subject, session, client, claim or
// issuer, so it would revoke every token.
var ErrNoSelector = errors.New("revocation: a watermark needs a subject, session, client, claim or issuer")

// Validate reports what makes w unusable: no selector, a claim without a
// value or the reverse, a selector too long, or Before unset or before
// the epoch.
func (w *Watermark) Validate() error {
	if w.Subject == "" && w.SessionID == "" && w.ClientID == "" && w.Claim == "" && w.Issuer == "" {
		return ErrNoSelector
	}
	if (w.Claim == "") != (w.Value == "") {
		return errors.New("revocation: claim and value go together")
	}
	for _, s := range []string{w.Issuer, w.Subject, w.SessionID, w.ClientID, w.Claim, w.Value} {
		if len(s) > maxSelectorBytes {
			return fmt.Errorf("revocation: a selector is longer than %d bytes", maxSelectorBytes)
		}
	}
	if w.Before.IsZero() || w.Before.Unix() < 0 {
		return errors.New("revocation: before must be set, and after the epoch")
	}
	return nil
}

// selectors are a watermark's selectors: the index holds one watermark
// for each set of them.
type selectors struct {
	issuer, subject, session, client, claim, value string
}

func (w *Watermark) selectors() selectors {
	return selectors{w.Issuer, w.Subject, w.SessionID, w.ClientID, w.Claim, w.Value}
}

// held is a watermark as the index holds it.
type held struct {
	w Watermark
	// before is w.Before in whole seconds, rounded down: a token whose iat
	// (also whole seconds) is at or below it is revoked.
	before int64
	// expires is when the watermark is dropped: no token it could refuse
	// is valid any more (see Store).
	expires time.Time
}

func newHeld(w Watermark, expires time.Time) *held {
	return &held{w: w, before: w.Before.Unix(), expires: expires}
}

// matches reports whether the watermark revokes the token of c.
func (h *held) matches(c *token.Claims) bool {
	if c.IssuedAt > h.before {
		return false
	}
	w := &h.w
	if w.Subject != "" && w.Subject != c.Subject || w.SessionID != "" && w.SessionID != c.SessionID {
		return false
	}
	if w.Issuer != "" || w.ClientID != "" {
		g := c.Grant
		if g == nil || w.Issuer != "" && w.Issuer != g.Issuer || w.ClientID != "" && w.ClientID != g.ClientID {
			return false
		}
	}
	if w.Claim != "" {
		v, ok := c.Extra[w.Claim].(string)
		if !ok || v != w.Value {
			return false
		}
	}
	return true
}

// claimValue names a string claim's value, such as email, for the index.
type claimValue struct{ name, value string }

// snapshot is what Revoked reads: built whole by every change, never
// modified. Each watermark is filed under one of its selectors, the first
// of subject, session, client, claim it sets, or among those of an issuer
// alone; Revoked looks a token up under each of its own, and then checks
// every selector of what it finds.
type snapshot struct {
	bySubject, bySession, byClient map[string][]*held
	byClaim                        map[claimValue][]*held
	claimNames                     []string // the claims byClaim files under
	byIssuer                       []*held  // an issuer alone
	n                              int
}

func buildSnapshot(all map[selectors]*held) *snapshot {
	if len(all) == 0 {
		return nil
	}
	s := &snapshot{n: len(all)}
	file := func(m *map[string][]*held, k string, h *held) {
		if *m == nil {
			*m = map[string][]*held{}
		}
		(*m)[k] = append((*m)[k], h)
	}
	for _, h := range all {
		w := &h.w
		switch {
		case w.Subject != "":
			file(&s.bySubject, w.Subject, h)
		case w.SessionID != "":
			file(&s.bySession, w.SessionID, h)
		case w.ClientID != "":
			file(&s.byClient, w.ClientID, h)
		case w.Claim != "":
			if s.byClaim == nil {
				s.byClaim = map[claimValue][]*held{}
			}
			k := claimValue{w.Claim, w.Value}
			if _, seen := s.byClaim[k]; !seen && !contains(s.claimNames, w.Claim) {
				s.claimNames = append(s.claimNames, w.Claim)
			}
			s.byClaim[k] = append(s.byClaim[k], h)
		default:
			s.byIssuer = append(s.byIssuer, h)
		}
	}
	return s
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func anyMatches(l []*held, c *token.Claims) bool {
	for _, h := range l {
		if h.matches(c) {
			return true
		}
	}
	return false
}

func (s *snapshot) revoked(c *token.Claims) bool {
	// A lookup in an empty (nil) map costs no hashing: only the kinds of
	// watermark held are paid for.
	if anyMatches(s.bySubject[c.Subject], c) {
		return true
	}
	if c.SessionID != "" && anyMatches(s.bySession[c.SessionID], c) {
		return true
	}
	if c.Grant != nil && anyMatches(s.byClient[c.ClientID], c) {
		return true
	}
	for _, name := range s.claimNames {
		if v, ok := c.Extra[name].(string); ok && anyMatches(s.byClaim[claimValue{name, v}], c) {
			return true
		}
	}
	return anyMatches(s.byIssuer, c)
}

// Index holds watermarks in process and answers, on every decision,
// whether one revokes a token. Revoked reads a snapshot through one atomic
// load, with no lock: nothing at all to pay while no watermark is held,
// and a map lookup or two while some are, however many. Changes copy the
// snapshot (copy on write): they are rare, and cost in proportion to the
// watermarks held.
//
// Of two watermarks with the same selectors the index keeps the one with
// the later Before, which revokes every token the other does.
type Index struct {
	snap atomic.Pointer[snapshot]
	obs  Observer

	mu  sync.Mutex
	all map[selectors]*held
}

// NewIndex returns an empty index; obs (nil: none) counts the tokens it
// refuses.
func NewIndex(obs Observer) *Index {
	if obs == nil {
		obs = NopObserver{}
	}
	return &Index{obs: obs, all: map[selectors]*held{}}
}

// Revoked reports whether a watermark held revokes the token of c (see
// Watermark: every selector it sets matches, and the token's iat, 0 when
// it has none, is at or before its Before). A nil Index holds nothing.
func (x *Index) Revoked(c *token.Claims) bool {
	if x == nil {
		return false
	}
	s := x.snap.Load()
	if s == nil || !s.revoked(c) {
		return false
	}
	x.obs.RefusedByWatermark()
	return true
}

// Len is the number of watermarks held.
func (x *Index) Len() int {
	if s := x.snap.Load(); s != nil {
		return s.n
	}
	return 0
}

// add holds each of hs (valid watermarks) and returns those that changed
// what the index revokes: new, or with a later Before than the one held.
func (x *Index) add(hs ...*held) []*held { return x.addLive(nil, hs...) }

// addLive is add, leaving out the watermarks expired by now(), read under
// the lock: a load of the shared set that read the clock before a prune
// cannot bring back what that prune dropped.
func (x *Index) addLive(now func() time.Time, hs ...*held) []*held {
	x.mu.Lock()
	defer x.mu.Unlock()
	var changed []*held
	dirty := false
	var at time.Time
	if now != nil {
		at = now()
	}
	for _, h := range hs {
		if now != nil && !at.Before(h.expires) {
			continue
		}
		k := h.w.selectors()
		cur, ok := x.all[k]
		switch {
		case !ok || h.before > cur.before:
			x.all[k] = h
			changed = append(changed, h)
			dirty = true
		case h.before == cur.before && h.expires.After(cur.expires):
			// Revokes nothing more, but is kept longer.
			x.all[k] = h
			dirty = true
		}
	}
	if dirty {
		x.snap.Store(buildSnapshot(x.all))
	}
	return changed
}

// prune drops the watermarks expired at now and returns how many.
func (x *Index) prune(now time.Time) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for k, h := range x.all {
		if !now.Before(h.expires) {
			delete(x.all, k)
			n++
		}
	}
	if n > 0 {
		x.snap.Store(buildSnapshot(x.all))
	}
	return n
}

// Add holds w until expires, on this replica only (a Store shares it):
// for tests and embedding. It returns w's validation error.
func (x *Index) Add(w Watermark, expires time.Time) error {
	if err := w.Validate(); err != nil {
		return err
	}
	x.add(newHeld(w, expires))
	return nil
}
