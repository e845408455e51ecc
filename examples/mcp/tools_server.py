"""A small MCP server for the AIOSS gateway's example and end-to-end test.

Tools: ``read_file(path)``, ``delete_file(path)``, ``transfer(amount, to)`` and
``send_email(to, subject, body, preview=False)``. None of them touches anything: each call it
executes is appended, as one JSON line ``{"tool": ..., "arguments": {...}}``, to the file
named by the environment variable ``AIOSS_DEMO_LOG`` (if set), so a test can see exactly
what reached the tools.

Built on the official Python SDK (``mcp`` 2.x); speaks MCP on standard input and output,
or with ``--http HOST:PORT`` over streamable HTTP at ``http://HOST:PORT/mcp``:

    python3 examples/mcp/tools_server.py
    python3 examples/mcp/tools_server.py --http 127.0.0.1:8091
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from mcp.server import MCPServer

server = MCPServer("aioss-demo-tools")


def _executed(tool: str, arguments: dict[str, Any]) -> None:
    log = os.environ.get("AIOSS_DEMO_LOG")
    if not log:
        return
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True) + "\n")


@server.tool()
def read_file(path: str) -> str:
    """Read a file (pretends to)."""
    _executed("read_file", {"path": path})
    return f"contents of {path}"


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file (pretends to)."""
    _executed("delete_file", {"path": path})
    return f"deleted {path}"


@server.tool()
def transfer(amount: float, to: str) -> str:
    """Transfer money (pretends to)."""
    _executed("transfer", {"amount": amount, "to": to})
    return f"transferred {amount} EUR to {to}"


@server.tool()
def send_email(to: list[str], subject: str, body: str, preview: bool = False) -> str:
    """Send an e-mail, or only preview it (pretends to)."""
    _executed("send_email", {"to": to, "subject": subject, "body": body, "preview": preview})
    if preview:
        return f"preview of an e-mail to {len(to)} recipients: {subject}"
    return f"sent to {len(to)} recipients: {subject}"


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="the AIOSS example MCP tools server")
    cli.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP at /mcp instead of stdio")
    opts = cli.parse_args()
    if opts.http:
        host, _, port = opts.http.rpartition(":")
        server.run(transport="streamable-http", host=host, port=int(port))
    else:
        server.run()
