// The official TypeScript SDK client doing MCP authorization against a gateway, the way an
// MCP host does it: RFC 9728 discovery from the 401, RFC 8414 metadata, RFC 7591
// registration, authorization code with PKCE and an RFC 8707 resource, then MCP calls with
// the token. The "browser" is plain HTTP: the login and consent forms of the provider's
// development interactions are posted by this script, and the redirect back carries the
// code, which goes to the SDK's `finishAuth`.
//
//   node oauth-client.mjs MCP_URL [CLIENT_ID]
//
// With CLIENT_ID the client still registers through the gateway (the gateway answers with
// its configured client). Every HTTP request the SDK makes is recorded. Prints one step per
// line as it happens (`step: …`), then one JSON object as the last line.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [mcpUrl, expectedClientId] = process.argv.slice(2);
if (!mcpUrl) {
  console.error("usage: node oauth-client.mjs MCP_URL [CLIENT_ID]");
  process.exit(2);
}
const REDIRECT = "http://localhost:33418/callback";
const out = { steps: [], requests: [] };

function step(text) {
  out.steps.push(text);
  console.log(`step: ${text}`);
}

// Records every request the SDK sends (method, URL, status) and says what it was for.
async function recordingFetch(input, init) {
  const url = typeof input === "string" ? input : input.url ?? String(input);
  const method = init?.method ?? "GET";
  const res = await fetch(input, init);
  out.requests.push({ method, url: String(url), status: res.status });
  const path = new URL(url).pathname;
  if (path.includes("oauth-protected-resource")) step(`SDK GET ${url} → ${res.status} (RFC 9728 resource metadata)`);
  else if (path.includes("oauth-authorization-server") && !path.endsWith("client-registration"))
    step(`SDK GET ${url} → ${res.status} (RFC 8414 authorization server metadata)`);
  else if (path.includes("openid-configuration")) step(`SDK GET ${url} → ${res.status} (OpenID Connect discovery)`);
  else if (path.endsWith("client-registration") || path.includes("clients-registrations"))
    step(`SDK POST ${url} → ${res.status} (RFC 7591 registration)`);
  else if (path.endsWith("/token")) step(`SDK POST ${url} → ${res.status} (token: code + PKCE verifier + resource)`);
  else if (res.status === 401) step(`SDK ${method} ${url} → 401, WWW-Authenticate: ${res.headers.get("www-authenticate")}`);
  return res;
}

// The user's browser: follows redirects, keeps cookies, fills the forms.
async function browse(authorizationUrl) {
  const jar = new Map();
  const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  let url = authorizationUrl;
  let form;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, {
      method: form ? "POST" : "GET",
      body: form,
      headers: { cookie: cookies(), ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
      redirect: "manual",
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const at = pair.indexOf("=");
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    form = undefined;
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      if (next.href.startsWith(REDIRECT)) {
        const code = next.searchParams.get("code");
        if (!code) throw new Error(`redirected back without a code: ${next.href}`);
        step(`browser: redirected back to ${REDIRECT} with an authorization code`);
        return code;
      }
      url = next.href;
      continue;
    }
    const html = await res.text();
    const prompt = html.match(/name="prompt" value="(\w+)"/)?.[1];
    const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
    if (res.status !== 200 || !prompt || !action) throw new Error(`unexpected page ${res.status} at ${url}: ${html.slice(0, 300)}`);
    url = new URL(action.replaceAll("&amp;", "&"), url).href;
    if (prompt === "login") {
      step(`browser: provider's login page at ${new URL(url).origin}; signing in as alice`);
      form = new URLSearchParams({ prompt, login: "alice", password: "any" }).toString();
    } else if (prompt === "consent") {
      step("browser: provider's consent page; granting");
      form = new URLSearchParams({ prompt }).toString();
    } else {
      throw new Error(`unknown prompt ${prompt}`);
    }
  }
  throw new Error("too many redirects");
}

class Provider {
  constructor() {
    this.stored = {};
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "agentgateway-rs OAuth test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.stored.client;
  }
  saveClientInformation(info) {
    this.stored.client = info;
    step(`SDK registered: client_id=${info.client_id}`);
  }
  tokens() {
    return this.stored.tokens;
  }
  saveTokens(tokens) {
    this.stored.tokens = tokens;
    const [, payload] = tokens.access_token.split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    out.claims = claims;
    step(`SDK got an access token (JWT) iss=${claims.iss} aud=${claims.aud} sub=${claims.sub}`);
  }
  async redirectToAuthorization(url) {
    out.authorization_url = url.href;
    step(
      `SDK sends the browser to ${url.origin}${url.pathname} (client_id=${url.searchParams.get("client_id")}, ` +
        `code_challenge_method=${url.searchParams.get("code_challenge_method")}, resource=${url.searchParams.get("resource")})`,
    );
    this.code = await browse(url.href);
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

function text(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

const authProvider = new Provider();
const transport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider, fetch: recordingFetch });
try {
  step(`SDK connects to ${mcpUrl} without a token`);
  const first = transport();
  try {
    await new Client({ name: "oauth-e2e", version: "1.0.0" }).connect(first);
    throw new Error("connected without authorization");
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!authProvider.code) throw new Error("the SDK never sent the browser to the provider");
  await first.finishAuth(authProvider.code);
  out.client_id = authProvider.stored.client?.client_id;
  if (expectedClientId && out.client_id !== expectedClientId)
    throw new Error(`registered as ${out.client_id}, expected the gateway's ${expectedClientId}`);

  step(`SDK reconnects to ${mcpUrl} with the token`);
  const client = new Client({ name: "oauth-e2e", version: "1.0.0" });
  await client.connect(transport());
  out.server = client.getServerVersion();
  out.tools = (await client.listTools()).tools.map((t) => t.name);
  step(`tools/list → ${out.tools.join(", ")}`);
  out.echo = text(await client.callTool({ name: "echo", arguments: { message: "hello through OAuth" } }));
  step(`tools/call echo → ${JSON.stringify(out.echo)}`);
  out.access_token = authProvider.stored.tokens.access_token;
  await client.close();
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.error = `${e.constructor.name}: ${e.message}`;
  step(`failed: ${out.error}`);
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
