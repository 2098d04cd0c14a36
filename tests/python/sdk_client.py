"""The official MCP Python SDK (`mcp`) as a client of the gateway, for the test suite.

    python sdk_client.py URL [CA_FILE] [TOOL ARGUMENTS_JSON]

Connects over Streamable HTTP (trusting CA_FILE for https:// URLs when given), initializes,
lists the tools and, when TOOL is given, calls it. Prints one JSON line:
{"server": name, "tools": [...], "result": {"isError": bool, "text": first text content}}
or {"error": "..."} (exit code 1).
"""

import asyncio
import json
import ssl
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


def client_factory(ca_file):
    def factory(headers=None, timeout=None, auth=None):
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        return httpx.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=verify, follow_redirects=True)

    return factory


async def run(url, ca_file, tool, arguments):
    async with streamablehttp_client(url, httpx_client_factory=client_factory(ca_file)) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {"server": init.serverInfo.name, "tools": [t.name for t in tools.tools]}
            if tool:
                result = await session.call_tool(tool, arguments)
                text = next((c.text for c in result.content if getattr(c, "type", "") == "text"), None)
                out["result"] = {"isError": bool(result.isError), "text": text}
            return out


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url = args[0]
    ca_file = args[1] if len(args) > 1 and args[1] else None
    tool = args[2] if len(args) > 2 else None
    arguments = json.loads(args[3]) if len(args) > 3 else {}
    try:
        print(json.dumps(asyncio.run(run(url, ca_file, tool, arguments))))
    except BaseException as e:  # noqa: BLE001 - report anything, including ExceptionGroups
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)


if __name__ == "__main__":
    main()
