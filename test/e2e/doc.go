// Package e2e holds the end-to-end tests of extauthz (e2e_test.go): the gateway built from
// this repository, behind a real nginx (auth_request to the HTTP authorization endpoint), in
// front of the official MCP "everything" server, with oidc-provider as the authorization
// server and the official MCP TypeScript SDK as the client, all on 127.0.0.1.
//
// Prerequisites (`make e2e-deps`): Node.js 20.19 or later, `npm ci --prefix test/e2e`,
// `npm ci --prefix test/authserver` and nginx (`apt-get install -y nginx`).
package e2e
