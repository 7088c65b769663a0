// MCP server for the extauthz end-to-end tests, built with the official TypeScript SDK v2
// (@modelcontextprotocol/server, served on node:http by @modelcontextprotocol/node) in its
// documented streamable HTTP setup: createMcpHandler(factory) wrapped by toNodeHandler, behind
// the SDK's localhost Host and Origin guards, on 127.0.0.1 and a port of the kernel's choosing.
//
//   node server-v2.mjs
//
// Two endpoints, one factory (so both serve the same tools):
//   /mcp          createMcpHandler(factory, { legacy: 'reject' }): MCP 2026-07-28 only; a
//                 2025-era request (no per-request _meta envelope) gets 400 and the
//                 unsupported-protocol-version error. This is what the README tells operators
//                 to run behind a proxy that does not show the body to the gateway.
//   /any-era/mcp  createMcpHandler(factory): the SDK's default posture, which also answers
//                 2025-era requests statelessly.
//
// Tools, answering as @modelcontextprotocol/server-everything's do:
//   echo     {message}  "Echo: <message>"
//   get-sum  {a, b}     "The sum of <a> and <b> is <a+b>."
// and the tools, resources and prompts the official conformance suite's scenarios call
// (conformance-fixtures.mjs).
//
// stderr lines the test reads:
//   E2E_LISTENING {"address":"127.0.0.1","port":41234}          once, when it listens
//   E2E_TOOL {"endpoint":"/mcp","era":"modern","tool":"get-sum","args":{"a":2,"b":3}}
//       each time a tool runs (before it answers), so that a test can tell that a refused
//       request ran nothing

import { createServer } from 'node:http';

import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { localhostHostValidation, localhostOriginValidation, toNodeHandler } from '@modelcontextprotocol/node';
import * as z from 'zod/v4';

import { registerConformanceFixtures } from './conformance-fixtures.mjs';

function log(prefix, value) {
  process.stderr.write(`${prefix} ${JSON.stringify(value)}\n`);
}

// factory builds the server for one request (createMcpHandler calls it per request).
function factory(endpoint) {
  return ({ era }) => {
    const server = new McpServer({ name: 'extauthz-e2e-v2', version: '0.0.0' });
    server.registerTool(
      'echo',
      { description: 'Echoes back the input string', inputSchema: z.object({ message: z.string() }) },
      async ({ message }) => {
        log('E2E_TOOL', { endpoint, era, tool: 'echo', args: { message } });
        return { content: [{ type: 'text', text: `Echo: ${message}` }] };
      },
    );
    server.registerTool(
      'get-sum',
      { description: 'Returns the sum of two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) },
      async ({ a, b }) => {
        log('E2E_TOOL', { endpoint, era, tool: 'get-sum', args: { a, b } });
        return { content: [{ type: 'text', text: `The sum of ${a} and ${b} is ${a + b}.` }] };
      },
    );
    registerConformanceFixtures(server);
    return server;
  };
}

const onerror = (err) => log('E2E_SERVER_ERROR', { message: String(err?.message ?? err) });
const endpoints = new Map([
  ['/mcp', toNodeHandler(createMcpHandler(factory('/mcp'), { legacy: 'reject', onerror }))],
  ['/any-era/mcp', toNodeHandler(createMcpHandler(factory('/any-era/mcp'), { onerror }))],
]);

const validateHost = localhostHostValidation();
const validateOrigin = localhostOriginValidation();

const httpServer = createServer((req, res) => {
  if (!validateHost(req, res) || !validateOrigin(req, res)) return;
  const handler = endpoints.get(new URL(req.url, 'http://127.0.0.1').pathname);
  if (!handler) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  handler(req, res).catch((err) => {
    onerror(err);
    if (!res.headersSent) res.writeHead(500).end();
  });
});

httpServer.listen(0, '127.0.0.1', () => {
  const a = httpServer.address();
  log('E2E_LISTENING', { address: a.address, port: a.port });
});
