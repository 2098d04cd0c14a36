#!/usr/bin/env python3
"""Latency of one agent: one keep-alive connection, sequential `tools/call echo`.

    python3 bench/sequential_calls.py PORT [CALLS]

Talks Streamable HTTP to http://127.0.0.1:PORT/mcp (an MCP server or the gateway in front of
one): `initialize`, `notifications/initialized`, then CALLS (default 40) calls one after
another on the same connection, the way SDK clients work; prints the median and the slowest.
A server that leaves Nagle's algorithm on and writes its answer in pieces shows ~40 ms per
call here (the client's delayed ACK), however fast it is.
"""
import http.client
import json
import statistics
import sys
import time

port = int(sys.argv[1])
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 40
conn = http.client.HTTPConnection("127.0.0.1", port)
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def post(body, session=None):
    headers = dict(HEADERS)
    if session:
        headers["mcp-session-id"] = session
        headers["mcp-protocol-version"] = "2025-06-18"
    conn.request("POST", "/mcp", json.dumps(body), headers)
    resp = conn.getresponse()
    resp.read()
    return resp


init = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
session = init.getheader("mcp-session-id")
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
took = []
for i in range(calls):
    start = time.perf_counter()
    post({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
          "params": {"name": "echo", "arguments": {"message": "x"}}}, session)
    took.append((time.perf_counter() - start) * 1000)
print(f"{calls} sequential calls: p50 {statistics.median(took):.2f} ms, max {max(took):.2f} ms")
