package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/extauthz/extauthz/pkg/authz"
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
	want := sha256.Sum256([]byte(adminToken))
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if adminToken == "" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "purging is disabled: set admin.token"})
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(given))
		// Compare digests: constant time, whatever the lengths.
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="extauthz-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid admin token is required"})
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
