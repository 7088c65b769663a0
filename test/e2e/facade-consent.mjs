// The OAuth facade's consent page in a real browser (facade_test.go): Debian's Chromium,
// headless, driven by playwright-core, opens an authorization request at the facade, signs in
// at oidc-provider's development login and consent pages, and stops on the gateway's own
// consent page: it prints the page's HTML, takes a screenshot, presses Allow, and prints the
// authorization response the browser was sent to.
//
//   node facade-consent.mjs '{"authorize":"http://127.0.0.1:PORT/oauth/authorize?…","issuer":"…","login":"alice","redirect":"http://127.0.0.1:9/cb","screenshot":"/tmp/consent.png"}'
//
// Configuration (one JSON argument):
//   authorize   the authorization request at the facade
//   issuer      the provider's issuer
//   login       the user name typed into the provider's login form
//   redirect    the client's redirect URI: answered by this script (the request never leaves
//               the browser), so that its query can be read
//   screenshot  where to write the consent page's PNG
//
// Output: one JSON object per line on stdout; the code is never printed. Exit 0 when every
// step completed, 1 otherwise (the last line is then {"event":"error",…}).

import { chromium } from 'playwright-core';

import { LAUNCH_ARGS, LAUNCH_TIMEOUT_MS } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');
if (!cfg.authorize || !cfg.issuer || !cfg.login || !cfg.redirect || !cfg.screenshot) {
  process.stderr.write('usage: node facade-consent.mjs \'{"authorize":"…","issuer":"…","login":"…","redirect":"…","screenshot":"…"}\'\n');
  process.exit(2);
}
const started = performance.now();
const timeout = 10000;

function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, t: Math.round(performance.now() - started) })}\n`);
}

let browser;

async function main() {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: LAUNCH_ARGS, timeout: LAUNCH_TIMEOUT_MS });
  emit({ event: 'browser', version: browser.version() });
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.setDefaultNavigationTimeout(timeout);

  // The client's redirect URI is answered here, so that the authorization response can be
  // read without a server at that address.
  const redirect = new URL(cfg.redirect);
  let response;
  await context.route((u) => u.origin === redirect.origin && u.pathname === redirect.pathname, async (route) => {
    response = new URL(route.request().url());
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' });
  });

  // 1. The facade sends the browser to the provider's login page.
  await page.goto(cfg.authorize);
  const loginButton = page.getByRole('button', { name: 'Sign-in' });
  await loginButton.waitFor();
  if (new URL(page.url()).origin !== new URL(cfg.issuer).origin) throw new Error(`login form at ${page.url()}, not at the provider`);
  emit({ event: 'page', page: 'provider_login', url: new URL(page.url()).origin });
  await page.locator('input[name="login"]').fill(cfg.login);
  await page.locator('input[name="password"]').fill('any-password');
  await loginButton.click();

  // 2. The provider's own consent (for the gateway's client).
  const continueButton = page.getByRole('button', { name: 'Continue' });
  await continueButton.waitFor();
  emit({ event: 'page', page: 'provider_consent', url: new URL(page.url()).origin });
  await continueButton.click();

  // 3. The gateway's consent page, for the MCP client.
  const allow = page.getByRole('button', { name: 'Allow' });
  await allow.waitFor();
  const at = new URL(page.url());
  emit({ event: 'page', page: 'facade_consent', url: `${at.origin}${at.pathname}`, html: await page.content() });
  await page.screenshot({ path: cfg.screenshot, fullPage: true });
  emit({ event: 'screenshot', path: cfg.screenshot });

  // 4. Allow: the browser is sent to the client's redirect URI.
  await allow.click();
  await page.waitForURL((u) => u.origin === redirect.origin && u.pathname === redirect.pathname, { waitUntil: 'load' });
  if (!response) throw new Error('the redirect URI was not requested');
  emit({
    event: 'authorization_response',
    url: `${response.origin}${response.pathname}`,
    code: response.searchParams.get('code') ? '(set)' : undefined,
    state: response.searchParams.get('state') ?? undefined,
    iss: response.searchParams.get('iss') ?? undefined,
    error: response.searchParams.get('error') ?? undefined,
  });
  await browser.close();
  browser = undefined;
  emit({ event: 'done' });
}

try {
  await main();
  process.exit(0);
} catch (err) {
  emit({ event: 'error', message: String(err?.message ?? err), stack: err?.stack });
  await browser?.close().catch(() => {});
  process.exit(1);
}
