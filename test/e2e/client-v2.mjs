// End-to-end MCP client for the extauthz tests on the official TypeScript SDK v2
// (@modelcontextprotocol/client): MCP 2026-07-28, whose transport sends MCP-Protocol-Version,
// Mcp-Method and Mcp-Name on every request itself, doing its own OAuth discovery, dynamic
// client registration, PKCE authorization and step-up against a real authorization server,
// through a real proxy.
//
//   node client-v2.mjs '{"url":"http://127.0.0.1:PORT/v2/mcp","scenario":"stepup","login":"carol"}'
//
// Configuration (one JSON argument):
//   url        the MCP endpoint
//   scenario   "echo"    connect, tools/call echo
//              "stepup"  connect, tools/call echo, then tools/call `adminTool`, which the
//                        gateway refuses with 403 insufficient_scope until the client has
//                        re-authorized with the challenged scopes
//              "lie"     connect, tools/call echo, then tools/call `adminTool` with the header
//                        Mcp-Name: echo (the body names `adminTool`): a gateway that sees the
//                        body refuses it; the call must fail (event "refused")
//   login      the user name typed into the authorization server's login form
//   clientMetadataUrl  an https URL: the client's Client ID Metadata Document, used as its
//              client_id where the authorization server supports them (no registration)
//   adminTool  the tool that needs the extra scope (stepup, lie), default "get-sum"
//
// The client pins the 2026-07-28 revision (versionNegotiation): the SDK's default is the
// 2025 initialize handshake, which sends no Mcp-* headers. connect() then opens with a
// server/discover request instead of initialize, and every request carries the per-request
// _meta envelope.
//
// The browser, the OAuthClientProvider and the JSON-line output are flow.mjs's (the same
// events as client.mjs). Exit 0 when the scenario completed, 1 otherwise (the last line is
// then {"event":"error",…}).

import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

import { emit, loggingFetch, Provider, readConfig, runScenario, textOf } from './flow.mjs';

const cfg = readConfig('client-v2.mjs');
const mcpURL = new URL(cfg.url);
const adminTool = cfg.adminTool ?? 'get-sum';
const clientInfo = { name: 'extauthz-e2e-v2', version: '0.0.0' };
const clientOptions = { versionNegotiation: { mode: { pin: '2026-07-28' } } };

const provider = new Provider(cfg.login ?? 'e2e-user', { clientMetadataUrl: cfg.clientMetadataUrl });
const sdkFetch = loggingFetch('sdk', { mcpURL, lie: cfg.scenario === 'lie' ? { tool: adminTool, name: 'echo' } : undefined });

function newTransport() {
  return new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: sdkFetch });
}

// finishAuth hands the redirect's query (code and RFC 9207 iss) to the transport, which
// checks the issuer and exchanges the code for tokens.
async function finishAuth(transport) {
  await transport.finishAuth(provider.takeCallback());
  emit({ event: 'finish_auth' });
}

// connect connects, authorizing first when the server asks for it; a started transport
// cannot be started again, so the connection is made again on a new one.
async function connect() {
  const first = newTransport();
  const client = new Client(clientInfo, clientOptions);
  try {
    await client.connect(first);
    emit({ event: 'connected', authorized_before: true, era: client.getProtocolEra() });
    return { client, transport: first };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    emit({ event: 'unauthorized', message: err.message });
  }
  await finishAuth(first);
  const transport = newTransport();
  const again = new Client(clientInfo, clientOptions);
  await again.connect(transport);
  emit({ event: 'connected', server: again.getServerVersion(), era: again.getProtocolEra() });
  return { client: again, transport };
}

async function callTool(client, transport, name, args) {
  try {
    return await client.callTool({ name, arguments: args });
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    // The SDK got 403 insufficient_scope, re-ran the authorization with the union of the
    // scopes it had and the challenged ones (redirectToAuthorization, same registration) and
    // now needs the code exchanged.
    emit({ event: 'step_up', tool: name, message: err.message });
    await finishAuth(transport);
    return client.callTool({ name, arguments: args });
  }
}

async function echo() {
  const { client, transport } = await connect();
  const r = await callTool(client, transport, 'echo', { message: 'upstream headers' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(r), is_error: Boolean(r.isError) });
  await client.close();
}

async function stepup() {
  const { client, transport } = await connect();
  const before = await callTool(client, transport, 'echo', { message: 'before step-up' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(before), is_error: Boolean(before.isError) });

  const sum = await callTool(client, transport, adminTool, { a: 2, b: 3 });
  emit({ event: 'tool_result', tool: adminTool, text: textOf(sum), is_error: Boolean(sum.isError) });

  const after = await callTool(client, transport, 'echo', { message: 'after step-up' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(after), is_error: Boolean(after.isError) });

  await client.close();
}

async function lie() {
  const { client, transport } = await connect();
  const before = await callTool(client, transport, 'echo', { message: 'before the lie' });
  emit({ event: 'tool_result', tool: 'echo', text: textOf(before), is_error: Boolean(before.isError) });
  let r;
  try {
    r = await client.callTool({ name: adminTool, arguments: { a: 2, b: 3 } });
  } catch (err) {
    emit({ event: 'refused', tool: adminTool, message: String(err?.message ?? err), code: err?.code ?? null });
    await client.close();
    return;
  }
  emit({ event: 'tool_result', tool: adminTool, text: textOf(r), is_error: Boolean(r.isError) });
  throw new Error(`${adminTool} with Mcp-Name echo was not refused`);
}

await runScenario({ echo, stepup, lie }, cfg);
