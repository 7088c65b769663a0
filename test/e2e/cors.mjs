// A browser MCP client's first requests, cross-origin, for the extauthz end-to-end tests
// (cors_test.go): Debian's Chromium, headless, driven by playwright-core, opens a page on one
// origin and from it fetches the MCP endpoint and the protected-resource metadata served
// (through nginx) on another, as a browser MCP client does before and after it has a token.
//
//   node cors.mjs '{"pages":["http://localhost:P/"],"mcp":"http://127.0.0.1:N/mcp","token":"…"}'
//
// Configuration (one JSON argument):
//   pages           the pages to run the fetches from, one after the other
//   mcp             the MCP endpoint
//   token           an access token for it
//   executablePath  the browser (default /usr/bin/chromium); nothing is ever downloaded
//
// For each page: one line {"event":"page","url":…,"origin":…,"results":{…}}, where results
// has, per fetch, what the page's script can see of the answer — status, the headers CORS
// lets it read, the body — or the error fetch threw (a refused preflight or an answer
// without Access-Control-Allow-Origin is a TypeError, whatever the server sent):
//   no_token         POST of tools/list with Mcp-Method and MCP-Protocol-Version, no token
//   metadata         GET of the resource_metadata URL of no_token's challenge, with
//                    MCP-Protocol-Version (so the browser sends a preflight first)
//   bad_token        as no_token, with Authorization: Bearer and a token that is none
//   token            as no_token, with the token and an Mcp-Param-Region header
//   unlisted_header  as token, plus a header the resource does not allow
// Then {"event":"done"}. Exit 0 when every page ran, 1 otherwise ({"event":"error",…} last).
// The token is never printed.

import { chromium } from 'playwright-core';

import { LAUNCH_ARGS, LAUNCH_TIMEOUT_MS } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');
if (!Array.isArray(cfg.pages) || !cfg.mcp || !cfg.token) {
  process.stderr.write('usage: node cors.mjs \'{"pages":["…"],"mcp":"…","token":"…"}\'\n');
  process.exit(2);
}

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

// battery runs in the page: plain fetch, as a browser MCP client's transport does it.
async function battery({ mcp, token }) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
  const base = {
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2026-07-28',
    'Mcp-Method': 'tools/list',
  };
  const out = {};
  const attempt = async (name, url, init) => {
    try {
      const r = await fetch(url, init);
      const headers = {};
      for (const [k, v] of r.headers) headers[k] = v; // only what CORS exposes
      out[name] = { status: r.status, headers, body: await r.text() };
    } catch (e) {
      out[name] = { error: String(e) };
    }
  };
  await attempt('no_token', mcp, { method: 'POST', headers: base, body });
  const www = out.no_token.headers?.['www-authenticate'] ?? '';
  const m = /resource_metadata="([^"]+)"/.exec(www);
  if (m) await attempt('metadata', m[1], { headers: { 'MCP-Protocol-Version': '2026-07-28' } });
  await attempt('bad_token', mcp, { method: 'POST', headers: { ...base, Authorization: 'Bearer not-a-token' }, body });
  await attempt('token', mcp, {
    method: 'POST', headers: { ...base, Authorization: `Bearer ${token}`, 'Mcp-Param-Region': 'eu' }, body,
  });
  await attempt('unlisted_header', mcp, {
    method: 'POST', headers: { ...base, Authorization: `Bearer ${token}`, 'X-Unlisted': '1' }, body,
  });
  return out;
}

let browser;

async function main() {
  browser = await chromium.launch({
    executablePath: cfg.executablePath ?? '/usr/bin/chromium',
    headless: true,
    args: LAUNCH_ARGS,
    timeout: LAUNCH_TIMEOUT_MS,
  });
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  emit({ event: 'browser', version: browser.version(), pid: processInfo.find((p) => p.type === 'browser')?.id });
  for (const url of cfg.pages) {
    // A fresh context per page: no preflight cache, no cookies carried over.
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    await page.goto(url);
    const origin = await page.evaluate(() => self.origin);
    const results = await page.evaluate(battery, { mcp: cfg.mcp, token: cfg.token });
    emit({ event: 'page', url, origin, results });
    await context.close();
  }
  emit({ event: 'done' });
}

try {
  await main();
  await browser.close();
} catch (err) {
  emit({ event: 'error', message: String(err?.stack ?? err) });
  await browser?.close().catch(() => {});
  process.exitCode = 1;
}
