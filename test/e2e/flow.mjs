// What the end-to-end MCP clients share, whatever the SDK generation they drive (client.mjs:
// @modelcontextprotocol/sdk 1.x; client-v2.mjs: @modelcontextprotocol/client 2.x): the
// configuration, the JSON-line output, the logging fetch handed to the SDK, the "browser" of
// the authorization code flow, and the OAuthClientProvider.
//
// The browser is plain fetch with a cookie jar: it opens the authorization URL, fills in
// oidc-provider's development login form (any login and password) and its consent form, and
// stops at the redirect to redirect_uri, whose query (code, state, iss) the client hands to
// the transport's finishAuth().
//
// Output: one JSON object per line on stdout, in order. {"event":"http",…} for every HTTP
// request made by the SDK ("actor":"sdk") or by the browser ("actor":"browser"); the other
// events say what the client did and saw. Tokens, codes and verifiers are never printed (only
// the access token's claims).

import { randomBytes } from 'node:crypto';

const started = performance.now();

export function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, t: Math.round(performance.now() - started) })}\n`);
}

// readConfig parses the one JSON argument; url and scenario are required.
export function readConfig(script) {
  const cfg = JSON.parse(process.argv[2] ?? '{}');
  if (!cfg.url || !cfg.scenario) {
    process.stderr.write(`usage: node ${script} '{"url":"…","scenario":"…","login":"…"}'\n`);
    process.exit(2);
  }
  return cfg;
}

// runScenario runs scenarios[cfg.scenario] and exits: 0 when it completed, 1 otherwise, the
// last line then being {"event":"error",…}.
export async function runScenario(scenarios, cfg) {
  try {
    if (!scenarios[cfg.scenario]) throw new Error(`unknown scenario ${cfg.scenario}`);
    await scenarios[cfg.scenario]();
    emit({ event: 'done' });
    process.exit(0);
  } catch (err) {
    emit({ event: 'error', name: err?.name, code: err?.code, status: err?.data?.status ?? err?.status, message: String(err?.message ?? err), stack: err?.stack });
    process.exit(1);
  }
}

export function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

// ---------------------------------------------------------------------------
// HTTP logging
// ---------------------------------------------------------------------------

// describeBody summarises a request body without secrets: form parameters by name (values
// only for the non-secret ones), a JSON-RPC message's method and name, a registration
// request's scope and redirect_uris.
function describeBody(body) {
  if (body == null) return undefined;
  if (body instanceof URLSearchParams) {
    const out = {};
    for (const [k, v] of body) {
      out[k] = ['code', 'code_verifier', 'refresh_token', 'client_secret', 'password'].includes(k) ? '(set)' : v;
    }
    return { form: out };
  }
  if (typeof body === 'string') {
    try {
      const msg = JSON.parse(body);
      if (msg && typeof msg === 'object' && msg.jsonrpc) {
        return { jsonrpc: { method: msg.method, name: msg.params?.name, id: msg.id, protocol_version: msg.params?._meta?.['io.modelcontextprotocol/protocolVersion'] } };
      }
      if (msg && typeof msg === 'object' && Array.isArray(msg.redirect_uris)) {
        return { registration: { scope: msg.scope, redirect_uris: msg.redirect_uris, grant_types: msg.grant_types, token_endpoint_auth_method: msg.token_endpoint_auth_method } };
      }
    } catch {
      // not JSON
    }
    return { form: Object.fromEntries([...new URLSearchParams(body)].map(([k, v]) => [k, k === 'password' ? '(set)' : v])) };
  }
  return undefined;
}

function describeURL(u) {
  const url = new URL(u);
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = ['code', 'code_challenge'].includes(k) ? '(set)' : v;
  return { url: `${url.origin}${url.pathname}`, query: Object.keys(query).length ? query : undefined };
}

// Mcp-Method / Mcp-Name as MCP 2026-07-28 clients send them; a name that is not plain
// visible ASCII goes in the =?base64?…?= form.
function mcpHeaders(body) {
  let msg;
  try {
    msg = JSON.parse(body);
  } catch {
    return {};
  }
  if (!msg || typeof msg.method !== 'string') return {};
  const out = { 'Mcp-Method': msg.method };
  const name = ['tools/call', 'prompts/get'].includes(msg.method) ? msg.params?.name
    : ['resources/read', 'resources/subscribe', 'resources/unsubscribe'].includes(msg.method) ? msg.params?.uri : undefined;
  if (typeof name === 'string') {
    out['Mcp-Name'] = /^[\x21-\x7e]*$/.test(name) ? name : `=?base64?${Buffer.from(name).toString('base64')}?=`;
  }
  return out;
}

// loggingFetch is the fetch handed to the SDK's transport (used for the MCP requests and for
// the OAuth discovery, registration and token requests). With addMcpHeaders, it adds
// Mcp-Method / Mcp-Name to every JSON-RPC POST to mcpURL, as a 2026-07-28 client would (for
// an SDK that does not send them itself). With lie ({tool, name}), a tools/call of lie.tool
// goes out with Mcp-Name lie.name: a client whose header names a harmless tool while its
// body calls another.
export function loggingFetch(actor, { mcpURL, addMcpHeaders = false, lie } = {}) {
  return async (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (addMcpHeaders && method === 'POST' && url === mcpURL?.href && typeof init.body === 'string') {
      const headers = new Headers(init.headers);
      for (const [k, v] of Object.entries(mcpHeaders(init.body))) headers.set(k, v);
      init = { ...init, headers };
    }
    if (lie && method === 'POST' && url === mcpURL?.href && typeof init.body === 'string') {
      let msg;
      try {
        msg = JSON.parse(init.body);
      } catch {
        msg = undefined;
      }
      if (msg?.method === 'tools/call' && msg.params?.name === lie.tool) {
        const headers = new Headers(init.headers);
        headers.set('Mcp-Name', lie.name);
        init = { ...init, headers };
      }
    }
    const sent = new Headers(init.headers);
    const entry = {
      event: 'http',
      actor,
      method,
      ...describeURL(url),
      body: describeBody(init.body),
      authorization: sent.has('authorization') ? sent.get('authorization').split(' ')[0] : undefined,
      mcp_method: sent.get('mcp-method') ?? undefined,
      mcp_name: sent.get('mcp-name') ?? undefined,
      mcp_protocol_version: sent.get('mcp-protocol-version') ?? undefined,
    };
    let res;
    try {
      res = await fetch(input, init);
    } catch (err) {
      emit({ ...entry, error: String(err) });
      throw err;
    }
    emit({
      ...entry,
      status: res.status,
      www_authenticate: res.headers.get('www-authenticate') ?? undefined,
      content_type: res.headers.get('content-type') ?? undefined,
      location: res.headers.get('location') ? describeURL(new URL(res.headers.get('location'), url)) : undefined,
    });
    return res;
  };
}

// ---------------------------------------------------------------------------
// The browser: fetch with a cookie jar, following redirects by hand
// ---------------------------------------------------------------------------

class CookieJar {
  #cookies = new Map(); // name -> {value, path}

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v || '/';
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const key = `${name}\n${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const path = new URL(url).pathname;
    const parts = [];
    for (const c of this.#cookies.values()) {
      if (path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) {
        parts.push(`${c.name}=${c.value}`);
      }
    }
    return parts.join('; ');
  }
}

const jar = new CookieJar();
const browserFetch = loggingFetch('browser');

function htmlUnescape(s) {
  return s.replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

// parseForm returns the first form of an HTML page: its action and its fields.
function parseForm(html) {
  const form = /<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return undefined;
  const fields = {};
  for (const m of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname="([^"]*)"/i.exec(m[0]);
    const value = /\bvalue="([^"]*)"/i.exec(m[0]);
    if (name) fields[htmlUnescape(name[1])] = value ? htmlUnescape(value[1]) : '';
  }
  return { action: htmlUnescape(form[1]), fields };
}

// authorizeInBrowser walks the authorization server's pages from authorizationURL until the
// redirect to redirectURL, and returns that redirect's query parameters.
async function authorizeInBrowser(authorizationURL, redirectURL, login) {
  let url = authorizationURL.href;
  let init = { method: 'GET' };
  for (let step = 0; step < 20; step++) {
    const headers = new Headers(init.headers);
    const cookie = jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await browserFetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(res);
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const next = new URL(res.headers.get('location'), url);
      if (`${next.origin}${next.pathname}` === `${redirectURL.origin}${redirectURL.pathname}`) {
        return next.searchParams;
      }
      url = next.href;
      init = { method: 'GET' };
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) throw new Error(`authorization server answered ${res.status}: ${text.slice(0, 500)}`);
    const form = parseForm(text);
    if (!form) throw new Error(`no form on ${url}: ${text.slice(0, 500)}`);
    const fields = new URLSearchParams(form.fields);
    if ('login' in form.fields) {
      fields.set('login', login);
      fields.set('password', 'any-password');
    }
    emit({ event: 'form', page: form.fields.prompt ?? 'unknown', action: describeURL(new URL(form.action, url)).url });
    url = new URL(form.action, url).href;
    init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: fields.toString() };
  }
  throw new Error('too many steps in the authorization server');
}

// ---------------------------------------------------------------------------
// OAuthClientProvider (the methods both SDK generations call; 2.x passes an issuer context
// to some of them, which a client of one authorization server does not need)
// ---------------------------------------------------------------------------

function decodeClaims(jwt) {
  const parts = jwt.split('.');
  if (parts.length !== 3) return { opaque: true };
  const c = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  return { iss: c.iss, sub: c.sub, aud: c.aud, client_id: c.client_id, scope: c.scope, exp: c.exp };
}

export class Provider {
  #login;
  #clientMetadataUrl;
  #clientInformation;
  #tokens;
  #codeVerifier;
  #discoveryState;
  #state;
  pendingCallback; // the redirect's query parameters, set by redirectToAuthorization

  // clientMetadataUrl, when set, is the client's Client ID Metadata Document: the SDK uses it
  // as the client_id instead of registering, where the authorization server supports them.
  constructor(login, { clientMetadataUrl } = {}) {
    this.#login = login;
    this.#clientMetadataUrl = clientMetadataUrl;
  }

  get clientMetadataUrl() {
    return this.#clientMetadataUrl;
  }

  get redirectUrl() {
    return 'http://127.0.0.1:9/e2e/callback'; // never requested: the browser stops at the redirect
  }

  get clientMetadata() {
    return {
      client_name: 'extauthz e2e client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this.#state = randomBytes(16).toString('base64url');
    return this.#state;
  }

  clientInformation() {
    return this.#clientInformation;
  }

  saveClientInformation(info) {
    this.#clientInformation = info;
    emit({ event: 'client_registered', client_id: info.client_id, issuer: info.issuer, scope: info.scope ?? null });
  }

  tokens() {
    return this.#tokens;
  }

  saveTokens(tokens) {
    this.#tokens = tokens;
    emit({ event: 'tokens_saved', token_type: tokens.token_type, scope: tokens.scope, refresh_token: Boolean(tokens.refresh_token), claims: decodeClaims(tokens.access_token) });
  }

  saveCodeVerifier(v) {
    this.#codeVerifier = v;
  }

  codeVerifier() {
    if (!this.#codeVerifier) throw new Error('no code verifier saved');
    return this.#codeVerifier;
  }

  saveDiscoveryState(state) {
    this.#discoveryState = state;
  }

  discoveryState() {
    return this.#discoveryState;
  }

  invalidateCredentials(scope) {
    emit({ event: 'invalidate_credentials', scope });
    if (scope === 'all' || scope === 'client') this.#clientInformation = undefined;
    if (scope === 'all' || scope === 'tokens') this.#tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.#codeVerifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.#discoveryState = undefined;
  }

  async redirectToAuthorization(authorizationURL) {
    const q = authorizationURL.searchParams;
    emit({
      event: 'redirect_to_authorization',
      ...describeURL(authorizationURL),
    });
    if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
      throw new Error('authorization request without a PKCE S256 challenge');
    }
    const params = await authorizeInBrowser(authorizationURL, new URL(this.redirectUrl), this.#login);
    if (params.get('error')) throw new Error(`authorization refused: ${params.get('error')}: ${params.get('error_description')}`);
    if (params.get('state') !== this.#state) throw new Error('state mismatch in the authorization response');
    if (!params.get('code')) throw new Error('authorization response without a code');
    emit({ event: 'authorization_code', iss: params.get('iss') ?? undefined });
    this.pendingCallback = params;
  }

  // takeCallback returns the pending redirect's query parameters once.
  takeCallback() {
    const params = this.pendingCallback;
    this.pendingCallback = undefined;
    if (!params) throw new Error('the SDK asked for authorization but no code was obtained');
    return params;
  }
}
