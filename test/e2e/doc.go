// Package e2e holds the end-to-end tests of extauthz (e2e_test.go): the gateway built from
// this repository, behind a real nginx (auth_request to the HTTP authorization endpoint) and a
// real Caddy (forward_auth), each running its file of deploy/ as shipped but for addresses, in
// front of the official MCP "everything" server (SDK 1.x) and a server on the official SDK
// 2.x (server-v2.mjs, MCP 2026-07-28), with oidc-provider as the authorization server and the
// official MCP TypeScript SDK clients (client.mjs: 1.x; client-v2.mjs: 2.x), all on
// 127.0.0.1; and the browser login (browser_test.go): Debian's headless Chromium, driven by
// playwright-core (browser.mjs), signs in through the gateway against oidc-provider's login
// and consent pages, and the session cookie it gets is a credential of an Envoy-shaped Check
// until it signs out.
//
// Prerequisites (`make e2e-deps`): Node.js 20.19 or later, `npm ci --prefix test/e2e`,
// `npm ci --prefix test/authserver`, nginx and chromium (`apt-get install -y nginx chromium`;
// the browser is never downloaded), and Caddy (`make caddy-installed`; the suite builds it
// with go install when it is missing).
package e2e
