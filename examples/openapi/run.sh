#!/usr/bin/env bash
# The inventory REST service (FastAPI, from tests/python) on 127.0.0.1:8000 and the gateway on
# :3000 with its operations as MCP tools. Needs Rust and python3 (with venv); installs the
# Python packages into a venv under ~/.cache. Ctrl-C stops both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
venv="${XDG_CACHE_HOME:-$HOME/.cache}/agentgateway-rs/python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
cargo build --release --locked --bin agentgateway
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

"$venv/bin/python" tests/python/rest_api.py 8000 &
service=$!
trap 'kill "$service" 2>/dev/null || true' EXIT

cat <<'TRY'

  Inventory API on http://127.0.0.1:8000 (spec: /openapi.json, docs: /docs); its operations
  as MCP tools on http://localhost:3000/mcp. In another terminal, with the MCP Inspector or:

    curl -si http://localhost:3000/mcp -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
    SESSION=...                     # the mcp-session-id header of that answer
    curl -s http://localhost:3000/mcp -H "mcp-session-id: $SESSION" \
      -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_item","arguments":{"path":{"item_id":1}}}}'

TRY
cd "$here"
"$target/release/agentgateway" -f config.yaml
