package oauthflow

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// MaxRegistrationBytes bounds a registration request's body.
const MaxRegistrationBytes = 16 << 10

// RegistrationOptions configures [NewRegistration].
type RegistrationOptions struct {
	// Store keeps the registered clients; required.
	Store *FacadeStore
	// PerAddress and Global limit registration requests, per client address and in all, on
	// this replica (defaults DefaultRegistrationPerAddress and DefaultRegistrationGlobal). A
	// request over either limit is answered 429 with Retry-After, before its body is read.
	PerAddress, Global *RateLimit
	// ClientAddress names the address a request counts against (default RemoteAddressKey).
	// Behind a proxy it must read the address the proxy forwards, or every request shares the
	// proxy's bucket.
	ClientAddress func(*http.Request) string
	// Now is the clock for the rate limits and client_id_issued_at (nil: time.Now).
	Now func() time.Time
	// Logger receives one record per registration and per refusal (nil: discard).
	Logger *slog.Logger
	// OnEvent, when set, is told "client_registered", "registration_refused" (invalid
	// metadata), "registration_limited" (rate limit or MaxClients) and "registration_failed"
	// (the store), for metrics. It must be quick.
	OnEvent func(event string)
}

// Registration is the facade's RFC 7591 dynamic client registration endpoint, for public
// clients only (see checkClientMetadata for the rules). It serves POST with a JSON body
// (and the CORS preflight of one: browser-based MCP clients register too); it needs no
// authentication (RFC 7591 §3: open registration), which is why it is rate-limited and
// bounded. It is safe for concurrent use.
type Registration struct {
	store   *FacadeStore
	limit   *limiter
	addr    func(*http.Request) string
	now     func() time.Time
	log     *slog.Logger
	onEvent func(string)
}

// NewRegistration checks o and builds the endpoint.
func NewRegistration(o RegistrationOptions) (*Registration, error) {
	if o.Store == nil {
		return nil, errors.New("facade: registration without a store")
	}
	per, global := DefaultRegistrationPerAddress, DefaultRegistrationGlobal
	if o.PerAddress != nil {
		per = *o.PerAddress
	}
	if o.Global != nil {
		global = *o.Global
	}
	for _, l := range []RateLimit{per, global} {
		if l.PerSecond < 0 || (l.PerSecond > 0 && l.Burst < 1) {
			return nil, errors.New("facade: a registration rate limit needs PerSecond ≥ 0 and, when limiting, Burst ≥ 1")
		}
	}
	r := &Registration{store: o.Store, addr: o.ClientAddress, now: o.Now, log: o.Logger, onEvent: o.OnEvent}
	if r.addr == nil {
		r.addr = RemoteAddressKey
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.onEvent == nil {
		r.onEvent = func(string) {}
	}
	r.limit = newLimiter(global, per, defaultMaxTrackedAddresses, r.now)
	return r, nil
}

// registrationResponse is the RFC 7591 §3.2.1 answer. No client_secret is issued, so
// client_secret_expires_at is left out, as are registration_access_token and
// registration_client_uri (RFC 7592 management is not offered).
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

// ServeHTTP registers a client: 201 with the registered metadata, 400 with
// invalid_redirect_uri or invalid_client_metadata (RFC 7591 §3.2.2), 413 for a body over
// MaxRegistrationBytes, 415 for a body that is not application/json, 429 over the rate
// limits and 503 when MaxClients clients are registered or the store fails (both with
// Retry-After).
func (g *Registration) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "POST, OPTIONS")
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "registration takes POST")
		return
	}
	ctx := r.Context()

	if ok, wait := g.limit.allow(g.addr(r)); !ok {
		g.onEvent("registration_limited")
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		writeOAuthError(w, http.StatusTooManyRequests, "too_many_requests", "too many registrations; try again later")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		g.refuse(r, w, http.StatusUnsupportedMediaType, &MetadataError{Code: "invalid_client_metadata", Description: "the body must be application/json"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRegistrationBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.refuse(r, w, http.StatusRequestEntityTooLarge, &MetadataError{Code: "invalid_client_metadata", Description: "the body is larger than " + strconv.Itoa(MaxRegistrationBytes) + " bytes"})
			return
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body could not be read")
		return
	}
	c, _, err := parseClientMetadata(body, false)
	if err != nil {
		var me *MetadataError
		if !errors.As(err, &me) {
			me = badMetadata("the client metadata is invalid")
		}
		g.refuse(r, w, http.StatusBadRequest, me)
		return
	}
	id, err := NewID()
	if err != nil {
		g.fail(r, w, err)
		return
	}
	c.ClientID = id
	c.IssuedAt = g.now().Truncate(time.Second)
	switch err := g.store.RegisterClient(ctx, c); {
	case errors.Is(err, ErrTooManyClients):
		g.onEvent("registration_limited")
		g.log.LogAttrs(ctx, slog.LevelWarn, "facade client registration refused: the most registered clients are live",
			slog.String("event", "registration_limited"))
		h.Set("Retry-After", "3600")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is closed for now")
		return
	case err != nil:
		g.fail(r, w, err)
		return
	}
	g.onEvent("client_registered")
	g.log.LogAttrs(ctx, slog.LevelInfo, "facade client registered",
		slog.String("event", "client_registered"), slog.String("client_id", c.ClientID),
		slog.String("client_name", c.ClientName), slog.Int("redirect_uris", len(c.RedirectURIs)))
	writeJSON(w, http.StatusCreated, registrationResponse{
		ClientID: c.ClientID, ClientIDIssuedAt: c.IssuedAt.Unix(), RedirectURIs: c.RedirectURIs,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, GrantTypes: c.GrantTypes,
		ResponseTypes: c.ResponseTypes, ClientName: c.ClientName, ClientURI: c.ClientURI, Scope: c.Scope,
	})
}

func (g *Registration) refuse(r *http.Request, w http.ResponseWriter, status int, me *MetadataError) {
	g.onEvent("registration_refused")
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "facade client registration refused",
		slog.String("event", "registration_refused"), slog.String("reason", me.Error()))
	writeOAuthError(w, status, me.Code, me.Description)
}

func (g *Registration) fail(r *http.Request, w http.ResponseWriter, err error) {
	g.onEvent("registration_failed")
	g.log.LogAttrs(r.Context(), slog.LevelWarn, "facade client registration failed",
		slog.String("event", "registration_failed"), slog.String("reason", err.Error()))
	w.Header().Set("Retry-After", "5")
	writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "registration is unavailable now")
}

// writeOAuthError answers an OAuth error object (RFC 6749 §5.2, RFC 7591 §3.2.2).
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description,omitempty"`
	}{code, description})
}

// writeJSON answers v as JSON, not to be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
