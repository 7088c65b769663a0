// The flags the end-to-end suite launches Debian's Chromium with (browser.mjs, cors.mjs).
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
