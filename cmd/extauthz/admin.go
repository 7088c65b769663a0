package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
	"github.com/extauthz/extauthz/pkg/revocation"
)

// purgeRequest is the body of POST /cache/purge.
type purgeRequest struct {
	Token       string `json:"token"`
	TokenSHA256 string `json:"token_sha256"`
	Resource    string `json:"resource"`
}

// purgeResponse reports how far a revocation reached.
type purgeResponse struct {
	Revoked      bool     `json:"revoked"`
	Resources    []string `json:"resources"`
	Until        string   `json:"until"`
	Replicas     int64    `json:"replicas"`
	Acknowledged int64    `json:"acknowledged"`
	Shared       bool     `json:"shared"`
	TokenSHA256  string   `json:"token_sha256,omitempty"`
	Note         string   `json:"note,omitempty"`
}

// purgeHandler revokes a token across the fleet. It answers 200 once every
// replica confirmed, 202 when some did not confirm in time, and 503 when
// the shared cache could not be reached (the revocation then holds on this
// replica only). Without an admin token configured it is disabled.
func (a *app) purgeHandler(adminToken string, sharedConfigured bool) http.HandlerFunc {
	admitted := adminPOST(adminToken, "purging")
	return func(w http.ResponseWriter, r *http.Request) {
		if !admitted(w, r) {
			return
		}
		var req purgeRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON: {\"token\": …} or {\"token_sha256\": …}, optional \"resource\""})
			return
		}
		if (req.Token == "") == (req.TokenSHA256 == "") {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give exactly one of token and token_sha256"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		res, err := a.engine.Revoke(ctx, authz.Revocation{Token: req.Token, TokenSHA256: req.TokenSHA256, Resource: req.Resource})
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		out := purgeResponse{
			Revoked: true, Resources: res.Resources, Until: res.Until.UTC().Format(time.RFC3339),
			Replicas: res.Replicas, Acknowledged: res.Acknowledged, Shared: res.Shared, TokenSHA256: res.TokenSHA256,
		}
		status := http.StatusOK
		switch {
		case !sharedConfigured:
			out.Note = "no shared cache configured: revoked on this replica"
		case !res.Shared:
			status = http.StatusServiceUnavailable
			out.Note = "the shared cache is unreachable: revoked on this replica only; retry"
		case res.Replicas == 0 || res.Acknowledged < res.Replicas:
			status = http.StatusAccepted
			out.Note = "stored in the shared cache, but not every replica confirmed dropping its copy in time"
		}
		a.log.Info("token revoked", "resources", res.Resources, "replicas", res.Replicas, "acknowledged", res.Acknowledged, "shared", res.Shared)
		writeJSON(w, status, out)
	}
}

// adminPOST returns the gate of a mutating admin endpoint: it answers
// (and reports false) unless the request is a POST bearing the admin
// token. Without an admin token configured, the endpoint (what, for the
// message) is disabled.
func adminPOST(adminToken, what string) func(w http.ResponseWriter, r *http.Request) bool {
	want := sha256.Sum256([]byte(adminToken))
	return func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Cache-Control", "no-store")
		if adminToken == "" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": what + " is disabled: set admin.token"})
			return false
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return false
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(given))
		// Compare digests: constant time, whatever the lengths.
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="extauthz-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid admin token is required"})
			return false
		}
		return true
	}
}

// revocationRequest is the body of POST /revocations: the selectors of a
// watermark (at least one) and its before, RFC 3339, now when absent.
type revocationRequest struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	SessionID string `json:"sid"`
	ClientID  string `json:"client_id"`
	Claim     string `json:"claim"`
	Value     string `json:"value"`
	Before    string `json:"before"`
}

// revocationResponse says where a watermark holds.
type revocationResponse struct {
	Revoked bool `json:"revoked"`
	// Shared: stored in Redis and announced to every replica. Held says
	// the same in a word: "fleet" or "replica" (this one only).
	Shared bool   `json:"shared"`
	Held   string `json:"held"`
	Before string `json:"before"`
	Until  string `json:"until"`
	Note   string `json:"note,omitempty"`
}

// revocationFutureSkew is how far past now a before may be: a clock a
// little ahead, not a date that would refuse tokens yet to be issued.
const revocationFutureSkew = 5 * time.Minute

// revocationsHandler records a revocation watermark: the tokens that
// match its selectors and were issued at or before its before are refused
// on every replica. It answers 200 once the watermark is stored in Redis
// and announced (or, without Redis, held here), and 503 with Retry-After
// when Redis is configured but failed: the watermark then holds on this
// replica only, and the call must be repeated.
func (a *app) revocationsHandler(adminToken string) http.HandlerFunc {
	admitted := adminPOST(adminToken, "revocation")
	return func(w http.ResponseWriter, r *http.Request) {
		if !admitted(w, r) {
			return
		}
		var req revocationRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON: {\"sub\": …, \"iss\": …, \"sid\": …, \"client_id\": …, \"claim\": …, \"value\": …, \"before\": RFC 3339}"})
			return
		}
		now := a.clock()
		wm := revocation.Watermark{Issuer: req.Issuer, Subject: req.Subject, SessionID: req.SessionID, ClientID: req.ClientID,
			Claim: req.Claim, Value: req.Value, Before: now, Source: "admin", Event: "admin", EventTime: now}
		if req.Before != "" {
			t, err := time.Parse(time.RFC3339, req.Before)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "before must be an RFC 3339 time, such as 2026-11-27T10:17:44Z"})
				return
			}
			if t.After(now.Add(revocationFutureSkew)) {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "before is in the future: it would refuse tokens not yet issued"})
				return
			}
			wm.Before = t
		}
		if err := wm.Validate(); err != nil {
			msg := err.Error()
			if errors.Is(err, revocation.ErrNoSelector) {
				msg = "give at least one of sub, sid, client_id, claim (with value) or iss: a watermark with none would revoke every token"
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
			return
		}
		if wm.Claim != "" && !a.claimKept(wm.Claim) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "no authorization server keeps claim " + strconv.Quote(wm.Claim) +
				" (keep_claims): no token could match it"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		err := a.revoker.Revoke(ctx, wm)
		out := revocationResponse{Revoked: true, Shared: err == nil, Held: "fleet", Before: wm.Before.UTC().Format(time.RFC3339),
			Until: a.revoker.Until(wm.Before).UTC().Format(time.RFC3339)}
		status := http.StatusOK
		switch {
		case errors.Is(err, revocation.ErrNoSharedTier):
			out.Held, out.Note = "replica", "no Redis configured: held on this replica only"
		case err != nil:
			status, out.Held = http.StatusServiceUnavailable, "replica"
			out.Note = "Redis failed: held on this replica only; retry"
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, status, out)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// resolveAdminToken reads the admin token from where the config says.
func resolveAdminToken(a *app) (string, error) {
	if a.cfg.Admin.Token.IsZero() {
		return "", nil
	}
	tok, err := a.cfg.Admin.Token.Resolve()
	if err != nil {
		return "", errors.New("admin.token: " + err.Error())
	}
	return tok, nil
}
