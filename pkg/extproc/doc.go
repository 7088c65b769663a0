// Package extproc is the Envoy external processor (envoy.service.ext_proc.v3)
// that filters MCP listings: from the answers to tools/list, prompts/list,
// resources/list and resources/templates/list it removes every entry whose
// operation (tools/call, prompts/get, resources/read) the resource's rules
// would deny the caller, so that clients see only what they may use.
//
// It decides nothing about requests: the Check (pkg/check) has already
// verified the token and allowed the listing request, and this package
// reuses that decision's outcome. The caller is who the Check's dynamic
// metadata says (namespace envoy.filters.http.ext_authz, forwarded by Envoy
// through metadata_options.forwarding_namespaces); never a header, which
// the client writes. A listing answered without that metadata, or with
// metadata that does not read, is replaced by a JSON-RPC error: never passed
// unfiltered.
//
// # Which responses are listings
//
// A listing is recognised by the shape of the response, not by the request:
// a JSON-RPC response whose result holds a "tools", "prompts", "resources"
// or "resourceTemplates" array. Envoy does not send the request to this
// processor (request headers are skipped, so no request state is kept), and
// the request's Mcp-Method header is the client's word. The response is the
// MCP server's: a client cannot make a non-listing look like one (its own
// input reaches the response only inside strings), and a server that shapes
// another result like a listing gets that array filtered too, which only
// removes entries. A listing whose array is missing has nothing to filter.
//
// # Response forms
//
// An application/json response (or one without a Content-Type) is read
// whole: the processor asks Envoy for the BUFFERED body in its answer to the
// response headers (a mode override), removing Content-Length since the body
// may change. A text/event-stream response is STREAMED: each complete event
// is passed on as it arrives, a message event carrying a listing rewritten
// with its other lines (id, event, retry, comments) kept. Both are bounded by
// ext_proc.max_body_bytes (the whole JSON body, each event); beyond it the
// JSON body, or the rest of the stream, is replaced by a JSON-RPC error.
//
// It is not a general response rewriter: other content types, and
// responses of resources whose rules do not tell operations apart, pass
// untouched.
package extproc
