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
//     "registrationIgnoresScope": false, // true: dynamic client registration
//                                     // drops the request's "scope" (see below)
//     "disableRegistration": false,   // true: no dynamic client registration
//     "tokenExchange": {              // RFC 8693 token exchange (see below)
//       "targets": [ {
//         "audience": "https://upstream.example/api", // matched against both
//                                     // the audience and resource parameters
//         "scope": "up:read up:write",// scopes an exchanged token may carry
//         "ttl": 300                  // seconds (default 300)
//       } ],
//       "invalidTokenError": "invalid_request" // or "invalid_grant" (see below)
//     },
//     "dpop": {                       // RFC 9449 DPoP (see below); absent: the
//       "enabled": true,              // library's default, which is enabled
//       "requireNonce": false
//     }
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
// Token exchange (RFC 8693), grant_type
// urn:ietf:params:oauth:grant-type:token-exchange, registered with
// provider.registerGrantType and so listed in grant_types_supported. A client
// may use it only if its grant_types list it; any other client is refused with
// unauthorized_client (RFC 6749 section 5.2; oidc-provider itself would say
// invalid_request, and this server rewrites that answer for this grant only).
//   - subject_token is required, with subject_token_type
//     urn:ietf:params:oauth:token-type:access_token. It must be a live access
//     token of this server: a JWT (RS256, typ at+jwt, this server's key and
//     issuer, exp in the future) or an opaque access token or client
//     credentials token still in the provider's store (not expired, not
//     revoked). Any audience and any client's token is accepted.
//   - actor_token (optional) needs actor_token_type access_token and is
//     checked like the subject token; the issued token then carries
//     act: {"sub": <actor token's sub>} (for a client credentials token the sub
//     is its client_id). If the subject token itself has an act claim, it is
//     nested inside the new one (RFC 8693 section 4.1: the most recent actor
//     outermost); without an actor token the issued token has no act.
//   - requested_token_type, if present, must be the access_token URN.
//   - audience and resource (each may repeat) together must name exactly one
//     configured target (duplicates of the same value are fine): none is
//     invalid_request, several or an unknown one invalid_target.
//   - scope, if present, must be a subset of the target's scope (else
//     invalid_scope); absent, the token gets all the target's scopes.
//   - A subject or actor token that is not valid is refused with the error
//     code tokenExchange.invalidTokenError: by default invalid_request, which
//     RFC 8693 section 2.2.2 requires ("MUST be the invalid_request error
//     code"); "invalid_grant" makes the server answer as many deployed servers
//     do. Missing or wrong parameters are always invalid_request.
//   - The issued token is a JWT signed like the server's other JWT access
//     tokens (same key, listed in jwks_uri), header typ at+jwt, claims iss,
//     sub (the subject token's), aud (the target's audience, a string),
//     client_id (the exchanging client), scope, iat, exp, jti and act. Its
//     exp is min(now + target ttl, the subject token's exp): an exchanged
//     token never outlives the token it was exchanged for (a choice of this
//     server; RFC 8693 leaves it open).
//   - The answer is {"access_token", "issued_token_type":
//     "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer",
//     "expires_in", "scope"} with Cache-Control: no-store.
// Every target whose audience is an absolute URI is also an RFC 8707
// resource for the other grants (unless "resources" already configures that
// URI): client_credentials with resource=<target audience> yields a JWT with
// that aud, the target's scopes and ttl (the gateway's own actor token). The
// "audience" parameter is not one of client_credentials' parameters and is
// ignored there.
//
// DPoP (RFC 9449): oidc-provider 9.13.3 has features.dPoP enabled by default
// (proofs signed with ES256, Ed25519 or EdDSA; no nonces; a proof's jti used
// once). A token request with a valid DPoP header gets a token bound to the
// proof's key: token_type "DPoP", and cnf.jkt (the RFC 7638 thumbprint) in a
// JWT access token's claims or in the introspection answer for an opaque one.
// A request without the header gets a Bearer token as before. A bad proof is
// refused with 400 invalid_dpop_proof. The "dpop" document:
//   - absent: the library's default, as above;
//   - enabled false: the feature is off: DPoP headers are ignored and every
//     token is Bearer (an authorization server that knows nothing of DPoP);
//   - requireNonce true: every proof at the token endpoint must carry a
//     server nonce (RFC 9449 section 8): one without is refused with 400
//     use_dpop_nonce and a DPoP-Nonce header to retry with. The nonce secret
//     is random per process.
//
// Test controls, answered at the issuer's origin (outside any issuerPath), on
// this test server only:
//   GET  /_test/exchanges          -> {"count": N}: token exchange requests
//        received so far, each counted once whatever its outcome (bad client
//        authentication, unauthorized_client, refusals, behaviour answers).
//   POST /_test/exchange-behaviour  JSON {"mode": "ok"|"status"|"slow",
//        "status": 503, "retryAfter": 7, "delayMs": 3000, "error": "..."}
//        sets how every following exchange (until the next change) is answered
//        once its client has been authenticated:
//          ok     - normally (the initial behaviour);
//          status - HTTP <status> (400..599) with {"error": <error, default
//                   temporarily_unavailable for 503, server_error for other
//                   5xx, invalid_request for 4xx>, "error_description"} and,
//                   if retryAfter (whole seconds) is given, Retry-After;
//                   no token is issued;
//          slow   - after sleeping delayMs milliseconds, normally.
//        delayMs is also honoured by mode status (sleep, then the status).
//        Answers 200 with the behaviour now in force, or 400 for a bad one.
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
import {
  generateKeyPairSync, createHash, createPublicKey, randomBytes, verify as verifySignature,
} from 'node:crypto';

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
const disableRegistration = cfg.disableRegistration ?? false;
if (typeof disableRegistration !== 'boolean') fail('disableRegistration must be a boolean');

// RFC 8693 token exchange: targets by audience, and the error code for a
// subject or actor token that is not valid.
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const tokenExchangeCfg = cfg.tokenExchange ?? {};
if (tokenExchangeCfg === null || typeof tokenExchangeCfg !== 'object' || Array.isArray(tokenExchangeCfg)) {
  fail('tokenExchange must be an object');
}
for (const key of Object.keys(tokenExchangeCfg)) {
  if (key !== 'targets' && key !== 'invalidTokenError') fail(`tokenExchange.${key} is not a known key`);
}
const invalidTokenError = tokenExchangeCfg.invalidTokenError ?? 'invalid_request';
if (invalidTokenError !== 'invalid_request' && invalidTokenError !== 'invalid_grant') {
  fail('tokenExchange.invalidTokenError must be "invalid_request" or "invalid_grant"');
}
const exchangeTargets = new Map(); // audience -> { audience, scopes: Set, ttl }
if (!Array.isArray(tokenExchangeCfg.targets ?? [])) fail('tokenExchange.targets must be a list');
for (const [i, t] of (tokenExchangeCfg.targets ?? []).entries()) {
  const where = `tokenExchange.targets[${i}]`;
  if (!t || typeof t.audience !== 'string' || t.audience === '') fail(`${where} needs an "audience" string`);
  if (exchangeTargets.has(t.audience)) fail(`${where}: audience ${t.audience} is listed twice`);
  if (t.scope !== undefined && typeof t.scope !== 'string') fail(`${where}.scope must be a string`);
  const targetTTL = t.ttl ?? DEFAULT_TTL;
  if (!Number.isSafeInteger(targetTTL) || targetTTL <= 0) fail(`${where}.ttl must be a positive integer`);
  const scope = (t.scope ?? '').split(' ').filter(Boolean);
  exchangeTargets.set(t.audience, { audience: t.audience, scopes: new Set(scope), ttl: targetTTL });

  // The target is an RFC 8707 resource too, for client_credentials, unless
  // "resources" configures that URI already (which then wins).
  let href;
  try {
    href = new URL(t.audience).href;
  } catch {
    continue; // a logical name, not a URI: exchange only
  }
  if (resourceServers.has(t.audience) || resourceServers.has(href)) continue;
  const info = {
    scope: scope.join(' '),
    audience: t.audience,
    accessTokenTTL: targetTTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
  resourceServers.set(t.audience, info);
  resourceServers.set(href, info);
}

// DPoP: the features.dPoP configuration, or undefined for the library's default.
const dpopCfg = cfg.dpop;
let dPoPFeature;
if (dpopCfg !== undefined) {
  if (dpopCfg === null || typeof dpopCfg !== 'object' || Array.isArray(dpopCfg)) fail('dpop must be an object');
  for (const key of Object.keys(dpopCfg)) {
    if (key !== 'enabled' && key !== 'requireNonce') fail(`dpop.${key} is not a known key`);
    if (typeof dpopCfg[key] !== 'boolean') fail(`dpop.${key} must be a boolean`);
  }
  const requireNonce = dpopCfg.requireNonce ?? false;
  dPoPFeature = { enabled: dpopCfg.enabled ?? true, allowReplay: false };
  if (requireNonce) {
    if (!dPoPFeature.enabled) fail('dpop.requireNonce needs dpop.enabled');
    dPoPFeature.nonceSecret = randomBytes(32);
    dPoPFeature.requireNonce = () => true;
  }
}

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
const verifyingKey = createPublicKey(privateKey);

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
    // Only exchanged tokens have extra claims (their act).
    async extraTokenClaims(ctx, token) {
      return exchangeExtraClaims.get(token);
    },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      ...(dPoPFeature ? { dPoP: dPoPFeature } : {}),
      registration: { enabled: !disableRegistration },
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

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    (ctx) => tokenExchange(provider, ctx),
    ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
      'requested_token_type', 'audience', 'resource', 'scope'],
    ['audience', 'resource'],
  );
  provider.use(aroundExchanges);

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
      const detail = [err?.error_description, err?.error_detail].filter(Boolean).join('; ');
      log(`event ${event}: ${err ? `${err.name}: ${err.message}${detail ? ` (${detail})` : ''}` : ''}`);
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

// ---------------------------------------------------------------------------
// RFC 8693 token exchange
// ---------------------------------------------------------------------------

// Test controls' state: requests counted, and how the next exchanges answer.
let exchangeCount = 0;
let exchangeBehaviour = { mode: 'ok' };
// Requests already counted by the grant handler (aroundExchanges counts the
// ones that never reached it).
const countedExchanges = new WeakSet();
// Extra claims (act) of the tokens being issued by an exchange, read by the
// provider's extraTokenClaims hook.
const exchangeExtraClaims = new WeakMap();

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const asList = (v) => (v === undefined ? [] : [v].flat());

// Koa middleware around the provider's routes: counts token exchange requests
// that failed before the grant handler (client authentication, grant not
// allowed, duplicate parameters), and answers unauthorized_client (RFC 6749
// section 5.2) where oidc-provider says invalid_request to an authenticated
// client whose grant_types lack token exchange.
async function aroundExchanges(ctx, next) {
  try {
    await next();
  } finally {
    const oidc = ctx.oidc?.route === 'token' ? ctx.oidc : undefined;
    if (oidc?.params?.grant_type === TOKEN_EXCHANGE) {
      if (!countedExchanges.has(ctx)) exchangeCount += 1;
      const { client } = oidc;
      if (ctx.status === 400 && ctx.body?.error === 'invalid_request'
          && client && !client.grantTypeAllowed(TOKEN_EXCHANGE)) {
        ctx.body = {
          error: 'unauthorized_client',
          error_description: `client ${client.clientId} may not use the token exchange grant`,
        };
      }
    }
  }
}

// invalidToken is the refusal of a subject or actor token that is not valid.
function invalidToken(description) {
  return new errors.CustomOIDCProviderError(invalidTokenError, description);
}

// ownJwtAccessToken checks that value is a JWT access token this server
// signed and that it is still valid; it returns its claims, or a reason.
function ownJwtAccessToken(value, issuer) {
  const parts = value.split('.');
  if (parts.length !== 3) return { reason: 'not a JWT' };
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { reason: 'not a JWT' };
  }
  if (header?.alg !== 'RS256' || header.kid !== signingJwk.kid) {
    return { reason: 'not signed with this server\'s key' };
  }
  // RFC 9068 section 2.1: at+jwt (or application/at+jwt) tells access tokens
  // from the ID tokens the same key signs.
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : '';
  if (typ !== 'at+jwt' && typ !== 'application/at+jwt') return { reason: 'not an access token (typ)' };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  if (!verifySignature('RSA-SHA256', signed, verifyingKey, Buffer.from(parts[2], 'base64url'))) {
    return { reason: 'bad signature' };
  }
  if (claims === null || typeof claims !== 'object') return { reason: 'claims are not an object' };
  if (claims.iss !== issuer) return { reason: 'another issuer' };
  const now = nowSeconds();
  if (!Number.isFinite(claims.exp) || claims.exp <= now) return { reason: 'expired' };
  if (claims.nbf !== undefined && !(Number.isFinite(claims.nbf) && claims.nbf <= now)) {
    return { reason: 'not yet valid' };
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') return { reason: 'no sub' };
  return { token: { sub: claims.sub, exp: claims.exp, act: claims.act } };
}

// ownAccessToken checks that value is a live access token of this server (a
// JWT, or an opaque token in the provider's store) and returns { token: {sub,
// exp, act} } or { reason }.
async function ownAccessToken(provider, value) {
  if (value.includes('.')) return ownJwtAccessToken(value, provider.issuer);
  // find() verifies expiry and the session binding; revoked tokens are gone.
  const found = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
  if (!found || found.isExpired) return { reason: 'unknown, revoked or expired' };
  return { token: { sub: found.accountId ?? found.clientId, exp: found.exp } };
}

// tokenExchange is the grant handler, run after client authentication and the
// client's grant_types check.
async function tokenExchange(provider, ctx) {
  exchangeCount += 1;
  countedExchanges.add(ctx);

  const behaviour = exchangeBehaviour;
  if (behaviour.delayMs) await sleep(behaviour.delayMs);
  if (behaviour.mode === 'status') {
    ctx.status = behaviour.status;
    if (behaviour.retryAfter !== undefined) ctx.set('Retry-After', String(behaviour.retryAfter));
    ctx.body = { error: behaviour.error, error_description: 'test server: exchange behaviour "status"' };
    return;
  }

  const { params, client } = ctx.oidc;

  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  // RFC 8693 section 2.1: actor_token_type is required with an actor_token
  // and must not be sent without one.
  if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
    if (!params.actor_token) throw new errors.InvalidRequest('actor_token_type without actor_token');
    if (params.actor_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`);
    }
  }

  const requested = [...new Set([...asList(params.audience), ...asList(params.resource)])];
  if (requested.length === 0) throw new errors.InvalidRequest('audience or resource is required');
  if (requested.length > 1) throw new errors.InvalidTarget('only one target (audience or resource) per exchange');
  const target = exchangeTargets.get(requested[0]);
  if (!target) throw new errors.InvalidTarget(`unknown target ${requested[0]}`);

  let scopes = [...target.scopes];
  if (params.scope !== undefined) {
    scopes = [...new Set(params.scope.split(' ').filter(Boolean))];
    const outside = scopes.filter((sc) => !target.scopes.has(sc));
    if (outside.length > 0) {
      throw new errors.InvalidScope(`scope not allowed for ${target.audience}: ${outside.join(' ')}`, outside.join(' '));
    }
  }

  const subject = await ownAccessToken(provider, params.subject_token);
  if (!subject.token) throw invalidToken(`subject_token is not a valid access token of this server: ${subject.reason}`);
  let act;
  if (params.actor_token) {
    const actor = await ownAccessToken(provider, params.actor_token);
    if (!actor.token) throw invalidToken(`actor_token is not a valid access token of this server: ${actor.reason}`);
    act = { sub: actor.token.sub, ...(subject.token.act ? { act: subject.token.act } : {}) };
  }

  const expiresIn = Math.min(target.ttl, subject.token.exp - nowSeconds());
  const token = new provider.AccessToken({
    accountId: subject.token.sub,
    client,
    scope: scopes.join(' ') || undefined,
    expiresIn,
    gty: 'token_exchange',
  });
  token.resourceServer = new provider.ResourceServer(target.audience, {
    audience: target.audience,
    scope: [...target.scopes].join(' '),
    accessTokenTTL: target.ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  });
  if (act) exchangeExtraClaims.set(token, { act });

  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();

  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : {}),
  };
}

// parseExchangeBehaviour validates a POST /_test/exchange-behaviour document.
function parseExchangeBehaviour(b) {
  if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new Error('want a JSON object');
  for (const key of Object.keys(b)) {
    if (!['mode', 'status', 'retryAfter', 'delayMs', 'error'].includes(key)) throw new Error(`unknown key ${key}`);
  }
  const out = { mode: b.mode };
  if (b.delayMs !== undefined) {
    if (!Number.isSafeInteger(b.delayMs) || b.delayMs < 0) throw new Error('delayMs must be a non-negative integer');
    out.delayMs = b.delayMs;
  }
  switch (b.mode) {
    case 'ok':
      if (Object.keys(b).length !== 1) throw new Error('mode ok takes no other keys');
      return out;
    case 'slow':
      if (!out.delayMs) throw new Error('mode slow needs a positive delayMs');
      if (b.status !== undefined || b.retryAfter !== undefined || b.error !== undefined) {
        throw new Error('mode slow takes only delayMs');
      }
      return out;
    case 'status':
      if (!Number.isSafeInteger(b.status) || b.status < 400 || b.status > 599) {
        throw new Error('mode status needs a status from 400 to 599');
      }
      out.status = b.status;
      if (b.retryAfter !== undefined) {
        if (!Number.isSafeInteger(b.retryAfter) || b.retryAfter < 0) {
          throw new Error('retryAfter must be a non-negative integer (seconds)');
        }
        out.retryAfter = b.retryAfter;
      }
      if (b.error !== undefined && (typeof b.error !== 'string' || !/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/.test(b.error))) {
        throw new Error('error must be a non-empty OAuth error code');
      }
      if (b.error !== undefined) {
        out.error = b.error;
      } else if (b.status === 503) {
        out.error = 'temporarily_unavailable';
      } else {
        out.error = b.status >= 500 ? 'server_error' : 'invalid_request';
      }
      return out;
    default:
      throw new Error('mode must be "ok", "status" or "slow"');
  }
}

function sendJSON(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(value));
}

// testControl answers the /_test/ routes; it returns false for any other path.
function testControl(req, res, pathname) {
  if (pathname === '/_test/exchanges') {
    if (req.method !== 'GET') {
      sendJSON(res, 405, { error: 'method_not_allowed' });
    } else {
      sendJSON(res, 200, { count: exchangeCount });
    }
    return true;
  }
  if (pathname === '/_test/exchange-behaviour') {
    if (req.method !== 'POST') {
      sendJSON(res, 405, { error: 'method_not_allowed' });
      return true;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= 4096) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > 4096) {
        sendJSON(res, 413, { error: 'too_large' });
        return;
      }
      try {
        exchangeBehaviour = parseExchangeBehaviour(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        sendJSON(res, 400, { error: 'invalid_request', error_description: err.message });
        return;
      }
      log(`exchange behaviour ${JSON.stringify(exchangeBehaviour)}`);
      sendJSON(res, 200, exchangeBehaviour);
    });
    return true;
  }
  return false;
}

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

    if (pathname.startsWith('/_test/') && testControl(req, res, pathname)) return undefined;

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
