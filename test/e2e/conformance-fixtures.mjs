// The tools, resources and prompts that the scenarios of the official MCP conformance suite
// (@modelcontextprotocol/conformance) call by name, written for server-v2.mjs from the
// requirements each scenario states. With them the suite's tools-*, resources-* and prompts-*
// scenarios exercise real answers through the gateway (test/e2e/conformance_test.go) rather
// than "not found". Nothing here is protected by a rule.

import { completable, fromJsonSchema, ResourceTemplate } from '@modelcontextprotocol/server';
import * as z from 'zod/v4';

// A 1x1 red PNG and a short silent WAV (8 kHz, 8-bit mono).
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';
const WAV = (() => {
  const samples = Buffer.alloc(8, 0x80);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + samples.length, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16); // fmt chunk size
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(8000, 24); // sample rate
  h.writeUInt32LE(8000, 28); // byte rate
  h.writeUInt16LE(1, 32); // block align
  h.writeUInt16LE(8, 34); // bits per sample
  h.write('data', 36);
  h.writeUInt32LE(samples.length, 40);
  return Buffer.concat([h, samples]).toString('base64');
})();

const text = (t) => ({ type: 'text', text: t });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function registerConformanceFixtures(server) {
  const noArgs = z.object({});
  server.registerTool('test_simple_text', { description: 'Returns one text item', inputSchema: noArgs },
    async () => ({ content: [text('This is a simple text response for testing.')] }));
  server.registerTool('test_image_content', { description: 'Returns one image item', inputSchema: noArgs },
    async () => ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }));
  server.registerTool('test_audio_content', { description: 'Returns one audio item', inputSchema: noArgs },
    async () => ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }));
  server.registerTool('test_embedded_resource', { description: 'Returns one embedded resource', inputSchema: noArgs },
    async () => ({
      content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
    }));
  server.registerTool('test_multiple_content_types', { description: 'Returns text, image and resource items', inputSchema: noArgs },
    async () => ({
      content: [
        text('Multiple content types test:'),
        { type: 'image', data: PNG, mimeType: 'image/png' },
        { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
      ],
    }));
  server.registerTool('test_error_handling', { description: 'Always fails', inputSchema: noArgs },
    async () => ({ isError: true, content: [text('This tool intentionally returns an error for testing')] }));
  server.registerTool('test_tool_with_progress', { description: 'Reports progress 0, 50 and 100 of 100', inputSchema: noArgs },
    async (_args, ctx) => {
      const token = ctx.mcpReq._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (token !== undefined) {
          await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress, total: 100 } });
        }
        if (progress < 100) await sleep(50);
      }
      return { content: [text('Progress reported: 0, 50 and 100 of 100.')] };
    });

  // SEP-2243 custom headers: the client mirrors `region` into Mcp-Param-Region, which the
  // server checks against the body.
  server.registerTool('test_custom_headers',
    { description: 'Echoes a region that travels in the Mcp-Param-Region header too', inputSchema: z.object({ region: z.string().meta({ 'x-mcp-header': 'Region' }) }) },
    async ({ region }) => ({ content: [text(`Region: ${region}`)] }));

  // JSON Schema 2020-12 keywords (SEP-1613, SEP-2106) that tools/list must keep as written.
  server.registerTool('json_schema_2020_12_tool', {
    description: 'Takes a contact, with JSON Schema 2020-12 keywords in its input schema',
    inputSchema: fromJsonSchema({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' },
        contactMethod: { type: 'string', enum: ['phone', 'email'] },
        phone: { type: 'string' },
        email: { type: 'string' },
      },
      allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
      if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
      then: { required: ['phone'] },
      else: { required: ['email'] },
      additionalProperties: false,
    }),
  }, async (args) => ({ content: [text(`Contact: ${JSON.stringify(args)}`)] }));

  server.registerResource('static-text', 'test://static-text', { description: 'A static text resource', mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] }));
  server.registerResource('static-binary', 'test://static-binary', { description: 'A static binary resource', mimeType: 'image/png' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: PNG }] }));
  server.registerResource('template-data', new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { description: 'Data for an id', mimeType: 'application/json' },
    async (uri, { id }) => ({
      contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }],
    }));

  server.registerPrompt('test_simple_prompt', { description: 'A prompt without arguments' },
    async () => ({ messages: [{ role: 'user', content: text('This is a simple prompt for testing.') }] }));
  server.registerPrompt('test_prompt_with_arguments',
    { description: 'A prompt with two arguments', argsSchema: z.object({
      // completion/complete offers the words that start with what was typed.
      arg1: completable(z.string().describe('First test argument'), (typed) => ['paris', 'park', 'party'].filter((w) => w.startsWith(typed ?? ''))),
      arg2: z.string().describe('Second test argument'),
    }) },
    async ({ arg1, arg2 }) => ({ messages: [{ role: 'user', content: text(`Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`) }] }));
  server.registerPrompt('test_prompt_with_embedded_resource',
    { description: 'A prompt that embeds a resource', argsSchema: z.object({ resourceUri: z.string().describe('URI of the resource to embed') }) },
    async ({ resourceUri }) => ({
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
        { role: 'user', content: text('Please process the embedded resource above.') },
      ],
    }));
  server.registerPrompt('test_prompt_with_image', { description: 'A prompt with an image' },
    async () => ({
      messages: [
        { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
        { role: 'user', content: text('Please analyze the image above.') },
      ],
    }));
}
