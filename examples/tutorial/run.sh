#!/usr/bin/env bash
# Brings up the tutorial: the example MCP server on 127.0.0.1:3001 and the gateway on :3000.
# Needs only Rust (cargo); Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release --locked --bin agentgateway --bin mcp-example-server
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target/release"

"$bin/mcp-example-server" --listen 127.0.0.1:3001 &
upstream=$!
trap 'kill "$upstream" 2>/dev/null || true' EXIT

cat <<'TRY'

  Gateway on http://localhost:3000/mcp (agentgateway's JWT Authorization tutorial),
  example MCP server on http://localhost:3001/mcp. In another terminal:

    cd examples/tutorial
    TOKEN=$(cat example1.key)       # example2.key sees fewer tools; no token sees only echo
    curl -si http://localhost:3000/mcp -H "Authorization: Bearer $TOKEN" \
      -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
    SESSION=...                     # the mcp-session-id header of that answer
    curl -s http://localhost:3000/mcp -H "Authorization: Bearer $TOKEN" -H "mcp-session-id: $SESSION" \
      -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'

  Admin page: http://localhost:15000/ui/ (its playground takes a token and lists, calls and
  explains tools). Metrics: http://localhost:15020/metrics. Edit config.yaml while this runs
  and the change applies.

TRY
cd "$here"
"$bin/agentgateway" -f config.yaml
