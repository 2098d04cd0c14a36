#!/usr/bin/env python3
"""Memory per idle MCP session in the gateway (its own RSS; upstream processes not counted).

Starts the release gateway on a config with one kind of target, opens N sessions
(`initialize` + `notifications/initialized`), leaves them idle, and reports the growth of
the gateway's resident memory divided by N.

    cargo build --release -p agentgateway -p agw-testkit --bin agentgateway --bin mcp-example-server
    python3 bench/session_memory.py [--sessions 500]

Kinds measured:
  http   one Streamable HTTP target (the example server over HTTP): the session lives in
         the sealed id; the gateway should hold nothing.
  stdio  one stdio target (a child per session): the gateway holds the child's pipes, a
         reader and a writer task, a stderr logger, the message queue.
"""
import argparse, json, os, re, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
GW = os.path.join(TARGET, "release", "agentgateway")
EXAMPLE = os.path.join(TARGET, "release", "mcp-example-server")
KEY = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def post(url, body, session=None):
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if session:
        headers["mcp-session-id"] = session
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        return r.headers.get("mcp-session-id")


def wait_port(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


def measure(kind, n):
    procs = []
    if kind == "http":
        up = free_port()
        procs.append(subprocess.Popen([EXAMPLE, "--listen", f"127.0.0.1:{up}"], stdout=subprocess.DEVNULL))
        wait_port(up)
        target = f"          - name: ex\n            mcp:\n              host: http://127.0.0.1:{up}/mcp\n"
    else:
        target = f"          - name: ex\n            stdio:\n              cmd: {EXAMPLE}\n              args: ['--stdio']\n"
    port = free_port()
    config = (f"config:\n  adminAddr: 'off'\n  readinessAddr: 'off'\n  statsAddr: 'off'\n  logging:\n    level: warn\n"
              f"  session:\n    key: {KEY}\n  mcp:\n    maxSessions: {n + 100}\n"
              # Quotas out of the way: one client opens every session here, and fast.
              f"    quotas:\n      anonymous:\n        sessions: {n + 100}\n        stdioSessions: {n + 100}\n"
              f"        newSessionsPerSecond: 1000000\n        newSessionsBurst: 1000000\n"
              f"        newSessionsPerSecondPerAddress: 1000000\n        newSessionsBurstPerAddress: 1000000\n"
              f"binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n{target}")
    gw = subprocess.Popen([GW, "--config", config], stderr=subprocess.DEVNULL)
    procs.append(gw)
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        # Warm up (allocator arenas, connection pool), then measure from there.
        for _ in range(20):
            s = post(url, INIT)
            post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, s)
        time.sleep(1)
        before = rss_kib(gw.pid)
        for _ in range(n):
            s = post(url, INIT)
            post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, s)
        time.sleep(2)
        after = rss_kib(gw.pid)
        per = (after - before) * 1024 / n
        print(f"{kind:5} {n} idle sessions: gateway RSS {before} KiB -> {after} KiB, {per:,.0f} bytes per session")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--kinds", default="http,stdio")
    a = ap.parse_args()
    for k in a.kinds.split(","):
        measure(k, a.sessions)


if __name__ == "__main__":
    main()
