// A real OpenID provider (npm `oidc-provider`, OpenID certified) for the MCP OAuth test,
// laid out like Keycloak so that the gateway's `provider: {keycloak: {}}` adapter applies:
// discovery at /.well-known/openid-configuration, dynamic registration (RFC 7591) at
// /clients-registrations/openid-connect, keys at /protocol/openid-connect/certs.
//
//   node oidc-provider.mjs PORT
//
// Issuer http://127.0.0.1:PORT. Authorization code with PKCE (S256, required), resource
// indicators (RFC 8707: an access token is a JWT whose `aud` is the requested resource),
// client credentials, and the built-in development login and consent pages (any user name
// and password), which the test client drives with plain HTTP form posts. Two clients exist
// from the start: `mcp-preregistered` (public, for the gateway's `clientId`) and `machine`
// (confidential, client_credentials, for tokens of any audience). Prints `ready` when
// listening.

import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
if (!port) {
  console.error("usage: node oidc-provider.mjs PORT");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const PREREGISTERED_REDIRECT = "http://localhost:33418/callback";

function key(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), alg, kid, use: "sig" };
}

const provider = new Provider(issuer, {
  jwks: {
    keys: [
      key("ec", { namedCurve: "P-256" }, "ES256", "es256-test"),
      key("rsa", { modulusLength: 2048 }, "RS256", "rs256-test"),
    ],
  },
  routes: {
    registration: "/clients-registrations/openid-connect",
    jwks: "/protocol/openid-connect/certs",
    authorization: "/protocol/openid-connect/auth",
    token: "/protocol/openid-connect/token",
  },
  clients: [
    {
      client_id: "mcp-preregistered",
      token_endpoint_auth_method: "none",
      redirect_uris: [PREREGISTERED_REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
    {
      client_id: "machine",
      client_secret: "machine-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
    },
  ],
  scopes: ["openid", "offline_access", "mcp:tools"],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: ["oauth-e2e-cookie-key"] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Every resource is an MCP server here; its tokens are JWTs naming it in `aud`.
      getResourceServerInfo: async (_ctx, resource) => ({
        audience: resource,
        scope: "mcp:tools",
        accessTokenFormat: "jwt",
        accessTokenTTL: 600,
        jwt: { sign: { alg: "ES256" } },
      }),
      useGrantedResource: async () => true,
    },
  },
});

provider.on("server_error", (_ctx, err) => console.error("oidc-provider server_error:", err));
provider.listen(port, "127.0.0.1", () => console.log("ready"));
