// End-to-end MCP client for the extauthz tests: the official TypeScript SDK
// (@modelcontextprotocol/sdk) doing its own OAuth discovery, dynamic client registration and
// PKCE authorization against a real authorization server, through a real proxy.
//
//   node client.mjs '{"url":"http://127.0.0.1:PORT/mcp","scenario":"tools","login":"alice"}'
//
// Configuration (one JSON argument):
//   url        the MCP endpoint
//   scenario   "tools"   connect, tools/list, tools/call echo, and a long-running tool
//                        whose progress notifications must stream through the proxy
//              "echo"    connect, tools/call echo
//              "stepup"  connect, tools/call echo, then tools/call `adminTool`, which the
//                        gateway refuses with 403 insufficient_scope until the client has
//                        re-authorized with the challenged scopes
//   login      the user name typed into the authorization server's login form
//   clientMetadataUrl  an https URL: the client's Client ID Metadata Document, used as its
//              client_id where the authorization server supports them (no registration)
//   adminTool  the tool that needs the extra scope (stepup), default "get-sum"
//   mcpHeaders true: add the Mcp-Method / Mcp-Name request headers of MCP 2026-07-28 to
//              every JSON-RPC POST. SDK 1.x does not send them and speaks 2025-11-25, so
//              behind a proxy that cannot show the body to the gateway (nginx auth_request)
//              a resource with rules refuses its requests, headers or not: the suite checks
//              that refusal with this option.
//
// The browser, the OAuthClientProvider and the JSON-line output are flow.mjs's. Exit 0 when
// the scenario completed, 1 otherwise (the last line is then {"event":"error",…}).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { emit, loggingFetch, Provider, readConfig, runScenario, textOf } from './flow.mjs';

const cfg = readConfig('client.mjs');
const mcpURL = new URL(cfg.url);
const adminTool = cfg.adminTool ?? 'get-sum';

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

const provider = new Provider(cfg.login ?? 'e2e-user', { clientMetadataUrl: cfg.clientMetadataUrl });
const sdkFetch = loggingFetch('sdk', { mcpURL, addMcpHeaders: Boolean(cfg.mcpHeaders) });

function newTransport() {
  return new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: sdkFetch });
}

// finishAuth hands the code the browser got to the transport, which exchanges it for tokens.
async function finishAuth(transport) {
  await transport.finishAuth(provider.takeCallback().get('code'));
  emit({ event: 'finish_auth' });
}

// connect connects, authorizing first when the server asks for it; the SDK's Client closes
// the transport when initialize fails, so the connection is made again on a new one.
async function connect() {
  const first = newTransport();
  const client = new Client({ name: 'extauthz-e2e', version: '0.0.0' });
  try {
    await client.connect(first);
    emit({ event: 'connected', authorized_before: true });
    return { client, transport: first };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    emit({ event: 'unauthorized', message: err.message });
  }
  await finishAuth(first);
  const transport = newTransport();
  const again = new Client({ name: 'extauthz-e2e', version: '0.0.0' });
  await again.connect(transport);
  emit({ event: 'connected', server: again.getServerVersion(), protocol_version: transport.protocolVersion, session: Boolean(transport.sessionId) });
  return { client: again, transport };
}

async function callTool(client, transport, name, args, options) {
  try {
    return await client.callTool({ name, arguments: args }, undefined, options);
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    // The SDK got 403 insufficient_scope, re-ran the authorization with the challenged scopes
    // (redirectToAuthorization) and now needs the code exchanged.
    emit({ event: 'step_up', tool: name, message: err.message });
    await finishAuth(transport);
    return client.callTool({ name, arguments: args }, undefined, options);
  }
}

async function tools() {
  const { client, transport } = await connect();
  const list = await client.listTools();
  emit({ event: 'tools_list', names: list.tools.map((t) => t.name) });

  const echo = await callTool(client, transport, 'echo', { message: 'hello through nginx' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(echo), is_error: Boolean(echo.isError) });

  // Progress notifications arrive on the POST's SSE stream while the tool runs: each must
  // reach the client when it is sent, not when the stream ends.
  const callStarted = performance.now();
  const progress = await callTool(client, transport, 'trigger-long-running-operation', { duration: 1.5, steps: 3 }, {
    onprogress: (p) => emit({ event: 'progress', progress: p.progress, total: p.total, since_call_ms: Math.round(performance.now() - callStarted) }),
  });
  emit({ event: 'tool_result', tool: 'trigger-long-running-operation', text: textOf(progress), is_error: Boolean(progress.isError), since_call_ms: Math.round(performance.now() - callStarted) });

  await transport.terminateSession();
  await client.close();
}

async function echo() {
  const { client, transport } = await connect();
  const r = await callTool(client, transport, 'echo', { message: 'upstream headers' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(r), is_error: Boolean(r.isError) });
  await transport.terminateSession();
  await client.close();
}

async function stepup() {
  const { client, transport } = await connect();
  const echo = await callTool(client, transport, 'echo', { message: 'before step-up' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(echo), is_error: Boolean(echo.isError) });

  const sum = await callTool(client, transport, adminTool, { a: 2, b: 3 });
  emit({ event: 'tool_result', tool: adminTool, text: textOf(sum), is_error: Boolean(sum.isError) });

  const after = await callTool(client, transport, 'echo', { message: 'after step-up' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(after), is_error: Boolean(after.isError) });

  await transport.terminateSession();
  await client.close();
}

await runScenario({ tools, echo, stepup }, cfg);
