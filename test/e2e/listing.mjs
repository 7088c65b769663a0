// The official MCP TypeScript SDK client (@modelcontextprotocol/sdk 1.x) reading listings as
// the gateway's list filter (pkg/extproc) rewrote them: each answer is served byte for byte,
// through the transport's `fetch` option, to a client that connects, pings until the next
// request id is the recorded answer's, then lists. The SDK parses the body (JSON, or the event
// stream with its own SSE parser) and checks the result against its schema; a malformed
// answer fails the call.
//
//   node listing.mjs '{"answers":[{"method":"tools/list","id":2,"contentType":"text/event-stream","file":"…"}]}'
//
// One JSON line per answer on stdout: {"method":…,"names":[…]}. Exit 1 on any failure.

import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const { answers } = JSON.parse(process.argv[2]);

function json(obj, extra = {}) {
  return new Response(JSON.stringify(obj), {
    status: 200,
    headers: { 'content-type': 'application/json', 'mcp-session-id': 's1', ...extra },
  });
}

for (const a of answers) {
  const body = readFileSync(a.file);
  const fetch = async (_url, init) => {
    if ((init?.method ?? 'GET') !== 'POST') return new Response(null, { status: 405 });
    const msg = JSON.parse(init.body);
    if (msg.id === undefined) return new Response(null, { status: 202 });
    switch (msg.method) {
      case 'initialize':
        return json({ jsonrpc: '2.0', id: msg.id, result: {
          protocolVersion: '2025-11-25',
          capabilities: { tools: {}, prompts: {}, resources: {} },
          serverInfo: { name: 'recorded', version: '1' },
        } });
      case 'ping':
        return json({ jsonrpc: '2.0', id: msg.id, result: {} });
      case a.method:
        if (msg.id !== a.id) throw new Error(`${a.method} sent with id ${msg.id}, the answer has ${a.id}`);
        return new Response(body, { status: 200, headers: { 'content-type': a.contentType, 'mcp-session-id': 's1' } });
    }
    throw new Error(`unexpected ${msg.method}`);
  };
  const client = new Client({ name: 'listing-check', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL('http://127.0.0.1:9/mcp'), { fetch }));
  // initialize took id 0; each ping one more.
  for (let id = 1; id < a.id; id++) await client.ping();
  let names;
  switch (a.method) {
    case 'tools/list': names = (await client.listTools()).tools.map((t) => t.name); break;
    case 'prompts/list': names = (await client.listPrompts()).prompts.map((p) => p.name); break;
    case 'resources/list': names = (await client.listResources()).resources.map((r) => r.uri); break;
    case 'resources/templates/list':
      names = (await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate); break;
    default: throw new Error(`unknown method ${a.method}`);
  }
  process.stdout.write(JSON.stringify({ method: a.method, names }) + '\n');
  await client.close();
}
