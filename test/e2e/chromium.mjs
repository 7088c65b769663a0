// How the end-to-end suite launches Debian's Chromium (browser.mjs, cors.mjs,
// facade-consent.mjs).
// Playwright adds its own (among them a fresh --user-data-dir in os.tmpdir(),
// --remote-debugging-pipe, --headless, --no-sandbox); it refuses a --user-data-dir in args.
export const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--no-proxy-server',
  // No host name is ever resolved: localhost is 127.0.0.1 (no IPv6 attempt), every other
  // name fails; only 127.0.0.1 can be reached.
  '--host-resolver-rules=MAP localhost 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

// How long a launch may take before it counts as failed. Idle, Chromium is up in about
// 1.5 s; the first launch after apt installed it, with the package's files not yet in the
// page cache and the suite compiling beside it on two cores, has taken over 20 s. The
// launch is not what the suite tests, so the bound only catches a browser that never
// starts.
export const LAUNCH_TIMEOUT_MS = 90000;
