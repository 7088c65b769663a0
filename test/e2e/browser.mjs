// Real-browser sign-in for the extauthz end-to-end tests (browser_test.go): Debian's Chromium,
// headless, driven by playwright-core, signs in through the gateway's browser login against
// oidc-provider's development login and consent pages, and signs out again.
//
//   node browser.mjs '{"public":"http://127.0.0.1:PORT","issuer":"http://127.0.0.1:PORT2","login":"alice","rd":"/mcp/app"}'
//
// Configuration (one JSON argument):
//   public          the gateway's public URL (its HTTP listener, which serves /oauth/*)
//   issuer          the authorization server's issuer
//   login           the user name typed into the login form (any password is accepted)
//   rd              the return path handed to /oauth/login
//   executablePath  the browser (default /usr/bin/chromium); nothing is ever downloaded
//   timeoutMs       per action and navigation (default 10000)
//
// Steps: open public + /oauth/login?rd=…, which redirects to the authorization server; fill
// in and submit the login form; submit the consent form; the server redirects back to the
// gateway's callback, which sets the session cookie and redirects to rd. The browser's cookies
// are then printed (the session cookie with its value: the test sends it in a Check). The
// script then follows commands on stdin, one a line:
//   attack URL  open URL, another site's page whose form POSTs to the gateway's /oauth/logout
//               by itself; wait until the browser is at /oauth/logout, print the page
//   logout      open public + /oauth/logout (a GET), print the confirmation page
//   confirm     press its "Sign out" button, print where the browser ends and the cookies left
//   close       close the browser and exit
//
// Only loopback traffic: the browser resolves no host name but localhost, to 127.0.0.1
// (--host-resolver-rules), uses no proxy, and its background services are off.
// oidc-provider's pages @import a Google font; that request fails at once
// (ERR_NAME_NOT_RESOLVED) and is reported as "offsite".
//
// Output: one JSON object per line on stdout. Authorization codes, states, PKCE values and
// nonces are never printed; cookie values only for the session cookie, which the test needs.
// Exit 0 when every step completed, 1 otherwise (the last line is then {"event":"error",…}).

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

import { LAUNCH_ARGS, LAUNCH_TIMEOUT_MS } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');
if (!cfg.public || !cfg.issuer || !cfg.login || !cfg.rd) {
  process.stderr.write('usage: node browser.mjs \'{"public":"…","issuer":"…","login":"…","rd":"/…"}\'\n');
  process.exit(2);
}
const publicURL = new URL(cfg.public);
const issuerURL = new URL(cfg.issuer);
const timeout = cfg.timeoutMs ?? 10000;
const started = performance.now();

function emit(event) {
  process.stdout.write(`${JSON.stringify({ ...event, t: Math.round(performance.now() - started) })}\n`);
}

// ---------------------------------------------------------------------------
// What the browser did, without secrets
// ---------------------------------------------------------------------------

const SECRET_PARAMS = new Set(['code', 'state', 'code_challenge', 'nonce']);

function describeURL(u) {
  const url = new URL(u);
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = SECRET_PARAMS.has(k) ? '(set)' : v;
  return { url: `${url.origin}${url.pathname}`, query: Object.keys(query).length ? query : undefined };
}

// cookieNames lists the names of a Cookie request header.
function cookieNames(header) {
  if (!header) return [];
  return header.split(';').map((c) => c.trim().split('=')[0]).filter(Boolean);
}

// setCookies returns a response's Set-Cookie lines with the values replaced.
function setCookies(headerValue) {
  if (!headerValue) return undefined;
  return headerValue.split('\n').map((line) => line.replace(/^([^=]*)=[^;]*/, '$1=(value)'));
}

function describeCookie(c, withValue) {
  return {
    name: c.name,
    value: withValue ? c.value : undefined,
    value_length: c.value.length,
    domain: c.domain,
    path: c.path,
    expires: c.expires,
    httpOnly: c.httpOnly,
    secure: c.secure,
    sameSite: c.sameSite,
  };
}

function isLoopback(u) {
  try {
    return ['127.0.0.1', 'localhost'].includes(new URL(u).hostname);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

let browser;

async function main() {
  const executablePath = cfg.executablePath ?? '/usr/bin/chromium';
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: LAUNCH_ARGS,
    timeout: LAUNCH_TIMEOUT_MS,
  });
  // The browser process and its command line (Playwright 1.65 no longer exposes the
  // process of a launched browser; the DevTools protocol tells its PID).
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  const pid = processInfo.find((p) => p.type === 'browser')?.id;
  let cmdline = [];
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    // not Linux
  }
  emit({ event: 'browser', version: browser.version(), pid, cmdline, tmpdir: tmpdir(), launch_args: LAUNCH_ARGS });

  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.setDefaultNavigationTimeout(timeout);

  // Every request the page makes; main-frame navigations with their answers (redirect hops
  // included), the cookies they carried (names only) and the cookies they set.
  const pending = [];
  context.on('requestfailed', (req) => {
    emit({ event: isLoopback(req.url()) ? 'request_failed' : 'offsite', method: req.method(), ...describeURL(req.url()), error: req.failure()?.errorText });
  });
  context.on('request', (req) => {
    if (!isLoopback(req.url()) && !req.url().startsWith('data:') && req.url() !== 'about:blank') {
      emit({ event: 'offsite_request', method: req.method(), ...describeURL(req.url()) });
    }
  });
  page.on('response', (res) => {
    const req = res.request();
    if (!req.isNavigationRequest() || req.frame() !== page.mainFrame()) return;
    pending.push((async () => {
      const [reqHeaders, resHeaders] = await Promise.all([req.allHeaders(), res.allHeaders()]);
      emit({
        event: 'navigation',
        method: req.method(),
        ...describeURL(req.url()),
        status: res.status(),
        location: resHeaders.location ? describeURL(new URL(resHeaders.location, req.url())) : undefined,
        cookies_sent: cookieNames(reqHeaders.cookie),
        set_cookie: setCookies(resHeaders['set-cookie']),
      });
    })().catch((err) => emit({ event: 'note', message: `navigation headers: ${err}` })));
  });
  const flush = async () => {
    await Promise.all(pending.splice(0));
  };

  // 1. The gateway's login redirects to the authorization server's login page.
  await page.goto(new URL(`/oauth/login?rd=${encodeURIComponent(cfg.rd)}`, publicURL).href);
  const loginButton = page.getByRole('button', { name: 'Sign-in' });
  await loginButton.waitFor();
  await flush();
  if (new URL(page.url()).origin !== issuerURL.origin) throw new Error(`login form at ${page.url()}, not at the issuer`);
  emit({ event: 'page', page: 'login', ...describeURL(page.url()), heading: await page.locator('h1').first().textContent() });

  // 2. Log in (any name, any password).
  await page.locator('input[name="login"]').fill(cfg.login);
  await page.locator('input[name="password"]').fill('any-password');
  await loginButton.click();

  // 3. Consent.
  const consentButton = page.getByRole('button', { name: 'Continue' });
  await consentButton.waitFor();
  await flush();
  if (new URL(page.url()).origin !== issuerURL.origin) throw new Error(`consent form at ${page.url()}, not at the issuer`);
  emit({
    event: 'page',
    page: 'consent',
    ...describeURL(page.url()),
    heading: await page.locator('h1').first().textContent(),
    items: (await page.locator('.login-card li').allTextContents()).map((s) => s.trim()),
  });
  await consentButton.click();

  // 4. Back at the gateway: the callback redirects to rd.
  await page.waitForURL((u) => u.origin === publicURL.origin && u.pathname === cfg.rd, { waitUntil: 'load' });
  await flush();
  emit({ event: 'page', page: 'returned', ...describeURL(page.url()) });

  const cookies = await context.cookies();
  const documentCookie = await page.evaluate(() => document.cookie);
  emit({
    event: 'signed_in',
    cookies: cookies.map((c) => describeCookie(c, c.name === 'extauthz-session')),
    document_cookie_names: cookieNames(documentCookie),
  });

  // 5. Whatever the test says next: a cross-site sign-out attempt, then the real sign-out.
  const logoutURL = new URL('/oauth/logout', publicURL);
  const atLogout = (u) => u.origin === publicURL.origin && u.pathname === logoutURL.pathname;
  for (;;) {
    const [command, arg] = (await nextLine()).split(' ');
    if (command === 'close') break;
    if (command === 'attack') {
      // The page submits its form while it loads: wait for the gateway's answer to the POST.
      const answered = page.waitForResponse((r) => r.request().method() === 'POST' && atLogout(new URL(r.url())));
      await page.goto(arg);
      await answered;
      await page.waitForLoadState('load');
      await flush();
      emit({ event: 'page', page: 'cross_site_logout', ...describeURL(page.url()), heading: await page.locator('h1').first().textContent() });
    } else if (command === 'logout') {
      const res = await page.goto(logoutURL.href);
      await flush();
      emit({
        event: 'page',
        page: 'logout_confirm',
        ...describeURL(page.url()),
        status: res.status(),
        heading: await page.locator('h1').first().textContent(),
      });
    } else if (command === 'confirm') {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL((u) => u.origin === publicURL.origin && !atLogout(u), { waitUntil: 'load' });
      await flush();
      emit({ event: 'page', page: 'signed_out', ...describeURL(page.url()) });
      emit({ event: 'signed_out', cookies: (await context.cookies()).map((c) => describeCookie(c, false)) });
    } else {
      throw new Error(`unknown command ${JSON.stringify(command)} on stdin`);
    }
  }

  await browser.close();
  browser = undefined;
  emit({ event: 'done' });
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function nextLine() {
  const { value, done } = await lines.next();
  if (done) throw new Error('stdin closed');
  return value.trim();
}

try {
  await main();
  process.exit(0);
} catch (err) {
  let page;
  try {
    const p = browser?.contexts()[0]?.pages()[0];
    if (p) page = { url: p.url(), text: (await p.locator('body').innerText({ timeout: 1000 })).slice(0, 2000) };
  } catch {
    // no page to show
  }
  emit({ event: 'error', message: String(err?.message ?? err), stack: err?.stack, page });
  await browser?.close().catch(() => {});
  process.exit(1);
}
