// Drives an MCP server with the official TypeScript SDK client and prints what happened as
// one JSON object on stdout. Used by the Rust tests to prove compatibility with a client we
// did not write.
//
//   node sdk-client.mjs URL [step ...]
//
// Steps: echo, progress, sampling, elicitation, call:<tool> (records result or error, with
// the error's data; with `call:<tool>=<JSON>` the arguments are that JSON, else
// `{message: "x"}`; a repeated step is recorded as call:<tool>#2, …),
// app:<tool> (as an MCP Apps host: the tool's UI link from tools/list, the resource read from
// it, and the link in the tool's result).
// Env: MCP_BEARER=<token> sends `Authorization: Bearer <token>`; MCP_TRANSPORT=sse uses the
// legacy HTTP+SSE client transport (URL = the /sse endpoint); MCP_SESSION=<id> resumes that
// Streamable HTTP session instead of initializing one (the SDK skips `initialize`).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [url, ...steps] = process.argv.slice(2);
if (!url) {
  console.error("usage: node sdk-client.mjs URL [step ...]");
  process.exit(2);
}

const headers = process.env.MCP_BEARER ? { Authorization: `Bearer ${process.env.MCP_BEARER}` } : {};
const transport =
  process.env.MCP_TRANSPORT === "sse"
    ? new SSEClientTransport(new URL(url), { requestInit: { headers } })
    : new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers },
        sessionId: process.env.MCP_SESSION || undefined,
      });
const client = new Client(
  { name: "sdk-e2e", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {} } },
);

const out = { sampling_requests: 0, elicitation_requests: 0 };
client.setRequestHandler(CreateMessageRequestSchema, async () => {
  out.sampling_requests++;
  return { model: "test-model", role: "assistant", content: { type: "text", text: "sampled-by-sdk-client" } };
});
client.setRequestHandler(ElicitRequestSchema, async () => {
  out.elicitation_requests++;
  return { action: "accept", content: { name: "Ada Lovelace", check: true } };
});

function text(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.session = transport.sessionId ?? null;
  const listed = (await client.listTools()).tools;
  out.tools = listed.map((t) => t.name);
  out.annotations = Object.fromEntries(listed.map((t) => [t.name, t.annotations ?? null]));
  for (const step of steps) {
    if (step === "echo") {
      out.echo = text(await client.callTool({ name: "echo", arguments: { message: "hello from the SDK" } }));
    } else if (step === "progress") {
      const progress = [];
      const result = await client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
        CallToolResultSchema,
        { onprogress: (p) => progress.push(p.progress) },
      );
      out.progress = progress;
      out.long_running = text(result);
    } else if (step === "sampling") {
      out.sampling = text(await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "Say hi" } }));
    } else if (step === "elicitation") {
      out.elicitation = text(await client.callTool({ name: "trigger-elicitation-request", arguments: {} }));
    } else if (step.startsWith("app:")) {
      const tool = listed.find((t) => t.name === step.slice(4));
      const uiLink = (meta) => meta?.ui?.resourceUri ?? meta?.["ui/resourceUri"] ?? null;
      const link = uiLink(tool?._meta);
      const read = link ? (await client.readResource({ uri: link })).contents[0] : null;
      const result = await client.callTool({ name: tool.name, arguments: {} });
      out[step] = { link, read, resultLink: uiLink(result._meta) };
    } else if (step.startsWith("call:")) {
      const eq = step.indexOf("=");
      const name = eq < 0 ? step.slice(5) : step.slice(5, eq);
      const args = eq < 0 ? { message: "x" } : JSON.parse(step.slice(eq + 1));
      // Recorded under `call:<tool>`; a repeated step under `call:<tool>#2`, `#3`, …
      const base = `call:${name}`;
      let key = base;
      for (let i = 2; key in out; i++) key = `${base}#${i}`;
      try {
        out[key] = { result: await client.callTool({ name, arguments: args }) };
      } catch (e) {
        out[key] = { error: { name: e.constructor.name, code: e.code ?? null, message: e.message, data: e.data ?? null } };
      }
    } else {
      throw new Error(`unknown step ${step}`);
    }
  }
  await client.close();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ...out, fatal: { name: e.constructor.name, code: e.code ?? null, message: e.message } }));
  process.exit(1);
}
