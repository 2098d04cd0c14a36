// A real authorization server (npm `oidc-provider`) that exchanges tokens, for the
// `backendAuth.oauthTokenExchange` and `crossAppAccess` tests. oidc-provider has no built-in
// RFC 8693 or RFC 7523 grant; it offers `registerGrantType`, and the two grants registered here
// use it: oidc-provider authenticates the client (client_secret_basic, client_secret_post,
// private_key_jwt — its own code) and issues the access tokens (its AccessToken model, JWTs
// signed with its keys, published at /jwks).
//
//   node token-exchange-provider.mjs PORT USER_JWKS_FILE USER_ISSUER CLIENT_JWK_FILE
//
// - token exchange (urn:ietf:params:oauth:grant-type:token-exchange): `subject_token` must be
//   a JWT from USER_ISSUER, signed by a key of USER_JWKS_FILE and not expired; the answer is an
//   access token whose `sub` is the subject's and whose `aud` is the requested `audience`.
//   With `requested_token_type=…:id-jag`, the answer is an ID-JAG (RFC draft "Identity
//   Assertion JWT Authorization Grant") for that audience instead.
// - JWT bearer (urn:ietf:params:oauth:grant-type:jwt-bearer): `assertion` must be an ID-JAG
//   this server issued (or a user JWT as above); the answer is an access token for its
//   subject, audience `resource-api`.
// Clients: `gw-basic`/`basic-secret` (client_secret_basic), `gw-post`/`post-secret`
// (client_secret_post), `gw-jwt` (private_key_jwt, public key from CLIENT_JWK_FILE, ES256).
// `GET /test/exchanges` answers the grants served so far: [{grant, sub, aud, client}].
// Prints `ready` when listening.

import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { SignJWT, createLocalJWKSet, jwtVerify, importJWK } from "jose";
import Provider, { errors } from "oidc-provider";
import ResourceServer from "oidc-provider/lib/helpers/resource_server.js";

const [port, userJwksFile, userIssuer, clientJwkFile] = [
  Number(process.argv[2]),
  process.argv[3],
  process.argv[4],
  process.argv[5],
];
if (!port || !userJwksFile || !userIssuer || !clientJwkFile) {
  console.error("usage: node token-exchange-provider.mjs PORT USER_JWKS_FILE USER_ISSUER CLIENT_JWK_FILE");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const userKeys = createLocalJWKSet(JSON.parse(readFileSync(userJwksFile, "utf8")));
const clientJwk = JSON.parse(readFileSync(clientJwkFile, "utf8"));

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token";
const ID_JAG = "urn:ietf:params:oauth:token-type:id-jag";

function key(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), alg, kid, use: "sig" };
}

// The key ID-JAGs are signed with (this server is both the IdP and the resource's AS).
const jagJwk = key("ec", { namedCurve: "P-256" }, "ES256", "id-jag");
const jagPrivate = await importJWK(jagJwk, "ES256");
const { d: _d, ...jagPublicJwk } = jagJwk;
const jagKeys = createLocalJWKSet({ keys: [jagPublicJwk] });

const grants = [TOKEN_EXCHANGE, JWT_BEARER];
const provider = new Provider(issuer, {
  // RS256 too: oidc-provider's default ID token algorithm, which every client must support.
  jwks: { keys: [key("ec", { namedCurve: "P-256" }, "ES256", "as-es256"), key("rsa", { modulusLength: 2048 }, "RS256", "as-rs256")] },
  clients: [
    { client_id: "gw-basic", client_secret: "basic-secret", grant_types: grants, redirect_uris: [], response_types: [] },
    {
      client_id: "gw-post",
      client_secret: "post-secret",
      token_endpoint_auth_method: "client_secret_post",
      grant_types: grants,
      redirect_uris: [],
      response_types: [],
    },
    {
      client_id: "gw-jwt",
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      jwks: { keys: [clientJwk] },
      grant_types: grants,
      redirect_uris: [],
      response_types: [],
    },
  ],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  cookies: { keys: ["token-exchange-test"] },
  features: { devInteractions: { enabled: false } },
});

const served = [];

async function userSubject(token) {
  try {
    const { payload } = await jwtVerify(token, userKeys, { issuer: userIssuer });
    return payload.sub;
  } catch (e) {
    throw new errors.InvalidGrant(`subject token rejected: ${e.code || e.message}`);
  }
}

// An access token of this server for `sub`, audience `aud` (a JWT, oidc-provider's format).
async function accessToken(ctx, sub, aud, scope) {
  const token = new ctx.oidc.provider.AccessToken({
    accountId: sub,
    client: ctx.oidc.client,
    grantId: randomUUID(),
    gty: "token_exchange",
    scope: scope || undefined,
  });
  token.resourceServer = new ResourceServer(aud, {
    audience: aud,
    scope: scope || "",
    accessTokenFormat: "jwt",
    accessTokenTTL: 600,
    jwt: { sign: { alg: "ES256" } },
  });
  ctx.oidc.entity("AccessToken", token);
  const value = await token.save();
  return { access_token: value, token_type: "Bearer", expires_in: token.expiration };
}

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx, next) => {
    const p = ctx.oidc.params;
    if (![ACCESS_TOKEN, ID_TOKEN].includes(p.subject_token_type)) {
      throw new errors.InvalidRequest(`unsupported subject_token_type ${p.subject_token_type}`);
    }
    const sub = await userSubject(p.subject_token);
    const aud = Array.isArray(p.audience) ? p.audience[0] : p.audience;
    if (!aud) throw new errors.InvalidTarget("audience required");
    served.push({ grant: "token-exchange", sub, aud, client: ctx.oidc.client.clientId, requested: p.requested_token_type || null, actor: p.actor_token ? true : false });
    if (p.requested_token_type === ID_JAG) {
      const jag = await new SignJWT({ sub, client_id: ctx.oidc.client.clientId, scope: p.scope || undefined, resource: p.resource || undefined })
        .setProtectedHeader({ alg: "ES256", kid: "id-jag", typ: "oauth-id-jag+jwt" })
        .setIssuer(issuer)
        .setAudience(aud)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(jagPrivate);
      ctx.body = { access_token: jag, issued_token_type: ID_JAG, token_type: "N_A", expires_in: 300 };
    } else {
      ctx.body = { ...(await accessToken(ctx, sub, aud, p.scope)), issued_token_type: ACCESS_TOKEN };
    }
    await next();
  },
  new Set(["subject_token", "subject_token_type", "actor_token", "actor_token_type", "audience", "resource", "scope", "requested_token_type"]),
  new Set(["audience", "resource"]),
);

provider.registerGrantType(
  JWT_BEARER,
  async (ctx, next) => {
    const p = ctx.oidc.params;
    let sub;
    try {
      const { payload } = await jwtVerify(p.assertion, jagKeys, { issuer, typ: "oauth-id-jag+jwt" });
      sub = payload.sub;
    } catch {
      sub = await userSubject(p.assertion);
    }
    served.push({ grant: "jwt-bearer", sub, aud: "resource-api", client: ctx.oidc.client.clientId });
    ctx.body = await accessToken(ctx, sub, "resource-api", p.scope);
    await next();
  },
  new Set(["assertion", "scope", "audience", "resource"]),
  new Set(["audience", "resource"]),
);

provider.use(async (ctx, next) => {
  if (ctx.path === "/test/exchanges") {
    ctx.body = served;
    return;
  }
  await next();
});
provider.on("server_error", (_ctx, err) => console.error("oidc-provider server_error:", err));
provider.listen(port, "127.0.0.1", () => console.log("ready"));
