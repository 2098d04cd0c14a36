#!/usr/bin/env bash
# The oidc example with local parts: npm oidc-provider (tests/node/oidc-provider.mjs; any user
# name and password sign in) on 127.0.0.1:7080, a one-line app (python3 -m http.server) on
# 127.0.0.1:8080, and the gateway on :3000. Needs Rust, Node 20 and python3. Open
# http://localhost:3000/ in a browser; http://localhost:3000/logout signs out. Ctrl-C stops all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
cargo build --release --locked --bin agentgateway
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
node tests/node/oidc-provider.mjs 7080 &
idp=$!
python3 -m http.server 8080 --bind 127.0.0.1 --directory "$here" >/dev/null 2>&1 &
app=$!
trap 'kill "$idp" "$app" 2>/dev/null || true' EXIT
until curl -sf http://127.0.0.1:7080/.well-known/openid-configuration >/dev/null; do sleep 0.2; done
# A confidential client for the gateway (RFC 7591 registration, as an operator would do it).
client=$(curl -sf -X POST http://127.0.0.1:7080/clients-registrations/openid-connect \
  -H 'content-type: application/json' \
  -d '{"redirect_uris":["http://localhost:3000/oauth/callback"],"grant_types":["authorization_code"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_basic"}')
export OIDC_CLIENT_ID=$(printf '%s' "$client" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
export OIDC_CLIENT_SECRET=$(printf '%s' "$client" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
export OIDC_COOKIE_SECRET=${OIDC_COOKIE_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
echo "  Open http://localhost:3000/ (sign in as anyone but mallory); http://localhost:3000/logout signs out."
cd "$here"
"$target/release/agentgateway" -f config.yaml
