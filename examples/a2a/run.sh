#!/usr/bin/env bash
# The A2A example: an agent (the official A2A JavaScript SDK's Express server,
# tests/node/a2a-agent.mjs) on 127.0.0.1:9999 and the gateway on :3000. Needs Rust and Node 20
# (installs the npm packages of tests/node). Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
cargo build --release --locked --bin agentgateway
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
node tests/node/a2a-agent.mjs 9999 &
agent=$!
trap 'kill "$agent" 2>/dev/null || true' EXIT
cat <<'TRY'

  Agent card through the gateway (its URL now names the gateway):
    curl -s http://localhost:3000/.well-known/agent-card.json
  The SDK's client, through the gateway (send, stream a task, fetch it):
    node tests/node/a2a-client.mjs http://localhost:3000 send stream get

TRY
cd "$here"
"$target/release/agentgateway" -f config.yaml
