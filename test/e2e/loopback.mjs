// Preload (`node --import ./loopback.mjs …`) that keeps a Node.js server on the loopback
// interface. Servers such as @modelcontextprotocol/server-everything call
// `app.listen(PORT)`, which listens on every interface; the end-to-end tests must only
// ever listen on 127.0.0.1. Every TCP `listen` of a net.Server (and so of http.Server and
// Express) is rewritten to host 127.0.0.1, whatever host it asked for; a listen on a Unix
// socket path or an inherited handle is left alone.
//
// Once a rewritten server listens, one line goes to stderr so that the test can find the
// actual port (the server may have been given port 0):
//
//   E2E_LISTENING {"address":"127.0.0.1","port":41234}

import net from 'node:net';

const LOOPBACK = '127.0.0.1';
const originalListen = net.Server.prototype.listen;

// toOptions turns the positional forms listen(port[, host][, backlog]) into the options form;
// it returns undefined for the forms it does not rewrite.
function toOptions(args) {
  const [first] = args;
  if (first === undefined || first === null || typeof first === 'number' ||
      (typeof first === 'string' && /^\d+$/.test(first))) {
    const opts = { port: first == null ? 0 : Number(first) };
    const backlog = args.slice(1).find((a) => typeof a === 'number');
    if (backlog !== undefined) opts.backlog = backlog;
    return opts;
  }
  if (typeof first === 'object' && first.path === undefined && first.fd === undefined &&
      first.handle === undefined && first._handle === undefined) {
    return { ...first };
  }
  return undefined; // a Unix socket path or a handle
}

net.Server.prototype.listen = function listen(...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const opts = toOptions(args);
  if (opts === undefined) {
    return originalListen.apply(this, callback ? [...args, callback] : args);
  }
  if (opts.host !== undefined && opts.host !== LOOPBACK) {
    process.stderr.write(`[loopback] listen host ${JSON.stringify(opts.host)} replaced by ${LOOPBACK}\n`);
  }
  opts.host = LOOPBACK;
  delete opts.ipv6Only;
  this.once('listening', () => {
    const a = this.address();
    process.stderr.write(`E2E_LISTENING ${JSON.stringify({ address: a.address, port: a.port })}\n`);
  });
  return callback ? originalListen.call(this, opts, callback) : originalListen.call(this, opts);
};
