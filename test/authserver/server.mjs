// Real OAuth 2.1 / OpenID Connect authorization server for extauthz
// integration tests, built on the `oidc-provider` npm package.
//
// Everything is configured from ONE JSON document in the environment variable
// AUTHSERVER_CONFIG (the Go helper internal/oidctest writes it):
//
//   {
//     "port": 0,                      // 0 = any free port; always 127.0.0.1
//     "issuerPath": "/tenant1",       // optional; issuer gets this path
//     "clients": [ {...} ],           // oidc-provider client metadata, passed through
//     "resources": [ {                // RFC 8707 resource servers
//        "resource": "http://127.0.0.1:1/mcp",
//        "scope": "mcp:tools mcp:read",
//        "format": "jwt" | "opaque",
//        "accessTokenTTL": 300,       // seconds (default 300)
//        "audience": "..."            // optional aud override (default: resource)
//     } ],
//     "defaultResource": "...",       // optional; resource used when a token
//                                     // request has no resource parameter
//     "ttl": { "ClientCredentials": 600, ... },  // optional, seconds
//     "scopes": ["mcp:tools"],        // extra scopes to support
//     "registrationIgnoresScope": false // true: dynamic client registration
//                                     // drops the request's "scope" (see below)
//   }
//
// When listening it prints exactly one line to stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT[/path]","port":PORT}
// All logging goes to stderr. SIGTERM/SIGINT close the server and exit 0.
//
// Metadata routes (in addition to everything oidc-provider serves under the
// issuer):
//   /.well-known/oauth-authorization-server[/path]  RFC 8414 (path-inserted)
//   /.well-known/openid-configuration/path          path-inserted OIDC discovery
//                                                   (only when issuerPath is set)
// All return the provider's own discovery document, byte for byte.
//
// Client authentication with private_key_jwt (and client_secret_jwt):
// oidc-provider v9 accepts a client assertion whose `aud` (a string, or an
// array containing at least one of them) is one of
//   - the issuer identifier                    e.g. http://127.0.0.1:PORT/tenant1
//   - the token endpoint URL                   .../token
//   - the URL of the endpoint being called     e.g. .../token/introspection
// (see lib/helpers/oidc_context.js clientJwtAuthExpectedAudience). The
// assertion must carry iss = sub = client_id, exp and a jti that is never
// reused (replay detection), and be signed with a key from the client's
// registered `jwks`.
//
// registrationIgnoresScope: oidc-provider treats a client's registered "scope"
// as the list of scopes it may ever request. MCP clients (the official
// TypeScript SDK among them) register with the scope of their first challenge,
// so a later step-up to a scope outside it would fail with invalid_scope. With
// this option a registration request's scope is dropped, and the client may
// request any scope the server supports (statically configured clients keep
// theirs).
//
// Introspection / revocation notes (observed with oidc-provider 9.13.3):
//   - active opaque client_credentials token:
//       {"active":true,"client_id":"gateway","exp":1795774927,"iat":1795774627,
//        "iss":"http://127.0.0.1:PORT","aud":"http://127.0.0.1:1/opaque",
//        "scope":"mcp:tools mcp:read","token_type":"Bearer"}
//     (no sub, no jti, no nbf; aud only when the token was issued for a resource)
//   - revoked, expired or unknown token: {"active":false}
//   - JWT-format access tokens cannot be introspected or revoked: the
//     endpoints answer HTTP 400 {"error":"unsupported_token_type", ...}.
//   - Any confidential client may introspect and revoke any opaque token;
//     public clients (token_endpoint_auth_method "none") only their own.

import { createServer } from 'node:http';
import { generateKeyPairSync, createHash, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const log = (...args) => {
  process.stderr.write(`[authserver] ${args.join(' ')}\n`);
};

function fail(msg) {
  log(`fatal: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Configuration document
// ---------------------------------------------------------------------------

let cfg;
try {
  cfg = JSON.parse(process.env.AUTHSERVER_CONFIG || '{}');
} catch (err) {
  fail(`AUTHSERVER_CONFIG is not valid JSON: ${err.message}`);
}
if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
  fail('AUTHSERVER_CONFIG must be a JSON object');
}

const port = cfg.port ?? 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`invalid port ${JSON.stringify(cfg.port)}`);
}

let issuerPath = cfg.issuerPath ?? '';
if (typeof issuerPath !== 'string') fail('issuerPath must be a string');
issuerPath = issuerPath.replace(/\/+$/, '');
if (issuerPath !== '' && !issuerPath.startsWith('/')) issuerPath = `/${issuerPath}`;
if (/[?#\s]/.test(issuerPath)) fail(`invalid issuerPath ${JSON.stringify(cfg.issuerPath)}`);

const DEFAULT_TTL = 300;

// resource URI -> resource server info for getResourceServerInfo
const resourceServers = new Map();
for (const r of cfg.resources ?? []) {
  if (!r || typeof r.resource !== 'string') fail('every resource needs a "resource" string');
  let href;
  try {
    href = new URL(r.resource).href;
  } catch {
    fail(`resource ${JSON.stringify(r.resource)} is not an absolute URI`);
  }
  const format = r.format ?? 'jwt';
  if (format !== 'jwt' && format !== 'opaque') {
    fail(`resource ${r.resource}: format must be "jwt" or "opaque"`);
  }
  const ttl = r.accessTokenTTL ?? DEFAULT_TTL;
  if (!Number.isSafeInteger(ttl) || ttl <= 0) {
    fail(`resource ${r.resource}: accessTokenTTL must be a positive integer`);
  }
  const info = {
    scope: typeof r.scope === 'string' ? r.scope : '',
    audience: r.audience || r.resource,
    accessTokenTTL: ttl,
    accessTokenFormat: format,
  };
  if (format === 'jwt') info.jwt = { sign: { alg: 'RS256' } };
  // Register both the string as given and its normalised form, so that
  // "http://h/x" and a trailing-slash-normalised variant resolve alike.
  resourceServers.set(r.resource, info);
  resourceServers.set(href, info);
}

const defaultResourceURI = cfg.defaultResource || undefined;
if (defaultResourceURI !== undefined && !resourceServers.has(defaultResourceURI)) {
  fail(`defaultResource ${defaultResourceURI} is not one of the configured resources`);
}

const registrationIgnoresScope = cfg.registrationIgnoresScope ?? false;
if (typeof registrationIgnoresScope !== 'boolean') fail('registrationIgnoresScope must be a boolean');

// Every scope a client may carry in its `scope` metadata must be known to the
// provider, so resource scopes are added to the provider's scope list too.
const scopes = new Set(['openid', 'offline_access']);
for (const s of cfg.scopes ?? []) scopes.add(s);
for (const info of resourceServers.values()) {
  for (const s of info.scope.split(' ')) if (s) scopes.add(s);
}

// ttl: plain numbers are passed through; AccessToken and ClientCredentials
// follow the resource server's accessTokenTTL first (a static
// ttl.ClientCredentials would otherwise override the per-resource TTL).
const ttlCfg = { ...(cfg.ttl ?? {}) };
const ttlFor = (kind, fallback) => {
  const configured = ttlCfg[kind];
  return (ctx, token) => token?.resourceServer?.accessTokenTTL ?? configured ?? fallback;
};
const ttl = {};
for (const [k, v] of Object.entries(ttlCfg)) {
  if (!Number.isSafeInteger(v) || v <= 0) fail(`ttl.${k} must be a positive integer`);
  ttl[k] = v;
}
ttl.AccessToken = ttlFor('AccessToken', 3600);
ttl.ClientCredentials = ttlFor('ClientCredentials', DEFAULT_TTL);

// ---------------------------------------------------------------------------
// Signing key: fresh RSA 2048 per process, kid = RFC 7638 thumbprint.
// ---------------------------------------------------------------------------

function rfc7638Thumbprint(jwk) {
  // Required members for RSA, in lexicographic order, no whitespace.
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = privateKey.export({ format: 'jwk' });
signingJwk.kid = rfc7638Thumbprint(signingJwk);
signingJwk.use = 'sig';
signingJwk.alg = 'RS256';

// ---------------------------------------------------------------------------
// HTTP server: listen first (port 0 needs the real port for the issuer),
// then build the provider and start answering.
// ---------------------------------------------------------------------------

let handler = (req, res) => {
  res.writeHead(503, { 'content-type': 'application/json' });
  res.end('{"error":"temporarily_unavailable"}');
};

const server = createServer((req, res) => {
  const started = process.hrtime.bigint();
  const { method, url } = req; // before any mount-path rewriting
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log(`${method} ${url} -> ${res.statusCode} (${ms.toFixed(1)}ms)`);
  });
  handler(req, res);
});

server.on('error', (err) => fail(`server error: ${err.message}`));

server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}${issuerPath}`;
  let provider;
  try {
    provider = buildProvider(issuer);
  } catch (err) {
    fail(`building provider: ${err.stack || err}`);
  }
  handler = routeRequests(provider);
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: actualPort })}\n`);
  log(`listening, issuer ${issuer}`);
});

function buildProvider(issuer) {
  const clients = (cfg.clients ?? []).map((c) => ({ ...c }));

  const provider = new Provider(issuer, {
    clients,
    ...(registrationIgnoresScope ? { extraClientMetadata: registrationWithoutScope } : {}),
    jwks: { keys: [signingJwk] },
    scopes: [...scopes],
    ttl,
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      introspection: {
        enabled: true,
        // Confidential clients (e.g. the gateway) may introspect any token;
        // public clients only their own.
        async allowedPolicy(ctx, client, token) {
          if (client.clientAuthMethod === 'none' && token.clientId !== client.clientId) {
            return false;
          }
          return true;
        },
      },
      revocation: {
        enabled: true,
        // Confidential clients may revoke any token (handy for tests that
        // revoke a token some other client obtained); public clients only
        // their own.
        async allowedPolicy(ctx, client, token) {
          if (token.clientId !== client.clientId && client.clientAuthMethod === 'none') {
            return false;
          }
          return true;
        },
      },
      resourceIndicators: {
        enabled: true,
        // Like the library's default (oneOf: the resources already granted, in
        // an authorization code / refresh token exchange), plus the optional
        // configured defaultResource. Without one, a token request lacking a
        // resource parameter gets an opaque token with no aud.
        async defaultResource(ctx, client, oneOf) {
          return oneOf || defaultResourceURI;
        },
        async useGrantedResource() {
          return false;
        },
        async getResourceServerInfo(ctx, resourceIndicator) {
          const info = resourceServers.get(resourceIndicator);
          if (!info) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return structuredClone(info);
        },
      },
    },
  });

  for (const event of [
    'server_error',
    'grant.error',
    'introspection.error',
    'revocation.error',
    'registration_create.error',
    'discovery.error',
    'jwks.error',
    'authorization.error',
  ]) {
    provider.on(event, (...args) => {
      const err = args.find((a) => a instanceof Error);
      log(`event ${event}: ${err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}` : ''}`);
    });
  }

  return provider;
}

// extraClientMetadata hook for registrationIgnoresScope. oidc-provider calls the
// validator for each extra property with the client metadata being built, which it
// may change; the property itself is a placeholder and is never set.
const registrationWithoutScope = {
  properties: ['extauthz_test_placeholder'],
  validator(ctx, key, value, metadata) {
    if (ctx?.oidc?.route === 'registration' && metadata.scope !== undefined) {
      log(`registration: dropping scope ${JSON.stringify(metadata.scope)}`);
      delete metadata.scope;
    }
  },
};

function notFound(res) {
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not_found"}');
}

function routeRequests(provider) {
  const callback = provider.callback();

  // Metadata aliases answered with the provider's own discovery document.
  const discoveryAliases = new Set([`/.well-known/oauth-authorization-server${issuerPath}`]);
  if (issuerPath) discoveryAliases.add(`/.well-known/openid-configuration${issuerPath}`);

  return (req, res) => {
    const q = req.url.indexOf('?');
    const pathname = q === -1 ? req.url : req.url.slice(0, q);
    const search = q === -1 ? '' : req.url.slice(q);

    if (discoveryAliases.has(pathname)) {
      // Re-dispatch to the provider's discovery route under the mount path.
      req.originalUrl = `${issuerPath}/.well-known/openid-configuration${search}`;
      req.url = `/.well-known/openid-configuration${search}`;
      return callback(req, res);
    }

    if (!issuerPath) return callback(req, res);

    if (pathname === issuerPath || pathname.startsWith(`${issuerPath}/`)) {
      // Mount the provider under issuerPath: oidc-provider derives its mount
      // path from req.originalUrl minus req.url.
      req.originalUrl = req.url;
      req.url = req.url.slice(issuerPath.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
      return callback(req, res);
    }

    return notFound(res);
  };
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal} received, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
