package oauthflow

import (
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// page writes a small HTML page: a title, a message, and an optional detail shown as code.
// Every value is HTML-escaped. The caller has set Cache-Control already (ServeHTTP does).
//
// With an error page configured (Options.ErrorPage), the browser is sent there instead with
// the error in the query: error (the OAuth error code, else invalid_request for a 4xx and
// temporarily_unavailable for a 5xx) and error_description (the fixed message).
func (h *Handler) page(w http.ResponseWriter, status int, title, message, detail string) {
	if h.errorPage != "" {
		code := detail
		if code == "" {
			code = "invalid_request"
			if status >= 500 {
				code = "temporarily_unavailable"
			}
		}
		q := url.Values{"error": {code}, "error_description": {message}}
		sep := "?"
		if strings.Contains(h.errorPage, "?") {
			sep = "&"
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", h.errorPage+sep+q.Encode())
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	body := "<p>" + html.EscapeString(message) + "</p>"
	if detail != "" {
		body += "<p>Error: <code>" + html.EscapeString(detail) + "</code></p>"
	}
	body += "<p><a href=\"" + html.EscapeString(h.successRedirect) + "\">Continue</a></p>" +
		"<p><small>HTTP " + strconv.Itoa(status) + "</small></p>"
	writeHTML(w, status, pageCSP, title, body)
}

// Content-Security-Policy of the pages: nothing loads, nothing frames them; the sign-out
// page's form may post to this origin only.
const (
	pageCSP   = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
	logoutCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)

// logoutPage asks the browser to confirm a sign-out: a form that POSTs to LogoutPath (with
// rd, when valid, in its query) and a link back to rd. It never uses ErrorPage: it is no error.
func (h *Handler) logoutPage(w http.ResponseWriter, rd string) {
	action, back := h.logoutPath, h.successRedirect
	if rd != "" {
		action += "?" + url.Values{"rd": {rd}}.Encode()
		back = rd
	}
	// The button's POST must carry this page's origin: under the no-referrer policy of the
	// other answers, browsers would send "Origin: null".
	w.Header().Set("Referrer-Policy", "same-origin")
	writeHTML(w, http.StatusOK, logoutCSP, "Sign out",
		"<p>Sign out of this site?</p>"+
			"<form method=\"post\" action=\""+html.EscapeString(action)+"\"><button type=\"submit\">Sign out</button></form>"+
			"<p><a href=\""+html.EscapeString(back)+"\">Cancel</a></p>")
}

// writeHTML writes a small HTML page: title as the heading, then body, which the caller has
// escaped. The caller has set Cache-Control already (ServeHTTP does; it is set again here).
func writeHTML(w http.ResponseWriter, status int, csp, title, body string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", csp)
	doc := "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">" +
		"<title>" + html.EscapeString(title) + "</title>" +
		"<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}" +
		"code{background:#eee;padding:.1em .3em}</style></head><body>" +
		"<h1>" + html.EscapeString(title) + "</h1>" + body + "</body></html>\n"
	w.WriteHeader(status)
	_, _ = w.Write([]byte(doc))
}

// oauthErrorCode returns an authorization response's error code for display and logging, or
// "invalid" when it is not an RFC 6749 error code (printable ASCII without '"' and '\'),
// or is unreasonably long.
func oauthErrorCode(s string) string {
	if s == "" || len(s) > 64 {
		return "invalid"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "invalid"
		}
	}
	return s
}
