// Preload (`node --import ./all-interfaces.mjs server.mjs`) for the compose
// stack's development authorization server: test/authserver/server.mjs is a
// test fixture that listens on 127.0.0.1 only, but Docker's port publishing
// connects to the container's own address, not to its loopback. A TCP listen
// on 127.0.0.1 is widened to every interface of the stack's network namespace
// (the compose file publishes the port on the host's 127.0.0.1 only). The
// issuer stays http://127.0.0.1:PORT, which is the same URL on the host and
// inside the stack.
import net from 'node:net';

const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  if (typeof args[0] === 'number' && args[1] === '127.0.0.1') {
    args[1] = '0.0.0.0';
  } else if (args[0] !== null && typeof args[0] === 'object' && args[0].host === '127.0.0.1') {
    args[0] = { ...args[0], host: '0.0.0.0' };
  }
  return originalListen.apply(this, args);
};
