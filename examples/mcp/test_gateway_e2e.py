"""End to end: the official Python MCP SDK as the client -> `aioss mcp` -> tools_server.py.

Real processes only: the gateway binary (`AIOSS_BIN`, default `target/debug/aioss`), the
example MCP server it starts, and for the operator test a real `aioss serve`.

* test_five_outcomes: one call allowed, one repaired (the tool sees the repaired
  arguments), one held and approved and one held and expired (both through MCP
  elicitation: the client's callback accepts the first and answers the second only after
  `--hold-wait`), one blocked (the tool never sees it); the store verifies and replays
  afterwards and holds all five.
* test_hold_answered_by_an_operator_of_aioss_serve: a client without elicitation; the
  held calls are answered through `aioss serve`'s operator endpoints (one approved, one
  rejected).
* test_a_mapping_error_is_reported_at_start: a bad argument path stops the gateway before
  it serves, with the file, line and column.
* test_streamable_http_agents_by_bearer_token: `aioss mcp --listen` over streamable HTTP
  (the SDK's `streamable_http_client`), two agents of an `aioss serve` configuration: an
  allowed call, a blocked one (never reaching the tool) and a held one approved through
  elicitation over HTTP, all proposed as the token's agent,
  another agent's `tools/list` without the tool its role may not call, and requests
  without a token, with an unknown one or with an operator's refused with nothing
  recorded.
* test_streamable_http_hold_answered_at_aioss_serve_as_the_caller: over `--listen`, a
  client without elicitation; its held call is put to a real `aioss serve` (reading the
  same configuration) with the caller's own token, and that server's operator approves it.
* test_upstream_by_url: the same tools server run with `--http`, reached by `aioss mcp`
  as `-- http://HOST:PORT/mcp` (rmcp's streamable HTTP client): an allowed call reaches
  it, a blocked one does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ROOT = Path(__file__).resolve().parents[2]
AIOSS = os.environ.get("AIOSS_BIN", str(ROOT / "target" / "debug" / "aioss"))
POLICY = str(ROOT / "policies" / "agent-tools.toml")
TOOLS = str(ROOT / "examples" / "mcp" / "agent-tools.tools.toml")
SERVER = str(ROOT / "examples" / "mcp" / "tools_server.py")


def _gateway(store: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    assert Path(AIOSS).exists(), f"build the aioss binary first ({AIOSS}): cargo build -p aioss"
    e = dict(os.environ)
    e["AIOSS_DEMO_LOG"] = str(log)
    e.update(env or {})
    args = ["mcp", "--policy", POLICY, "--tools", TOOLS, "--audit", str(store), *extra, "--", sys.executable, SERVER]
    return StdioServerParameters(command=AIOSS, args=args, env=e, cwd=str(ROOT))


def _executed(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _meta(r: types.CallToolResult) -> dict[str, Any]:
    return (r.meta or {}).get("aioss", {})


def _aioss(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIOSS, *args], capture_output=True, text=True, timeout=120)


def _records(store: Path) -> list[dict[str, Any]]:
    out = _aioss("audit", "export", str(store))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _check_store(store: Path, decisions: int) -> list[dict[str, Any]]:
    v = _aioss("audit", "verify", str(store))
    assert v.returncode == 0, v.stdout + v.stderr
    r = _aioss("audit", "replay", str(store), "--policy", POLICY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "AGREE" in r.stdout, r.stdout
    recs = _records(store)
    assert sum(1 for x in recs if x["kind"] == "decision") == decisions
    return recs


EMAIL_TO = [f"person{i}@example.com" for i in range(12)]


def test_five_outcomes(tmp_path: Path) -> None:
    store, log = tmp_path / "audit.db", tmp_path / "executed.jsonl"
    hold_wait = 2
    asked: list[str] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            return types.ElicitResult(action="accept", content={"reason": "looks fine"})
        # The second hold: answer only after the gateway stopped waiting.
        await anyio.sleep(hold_wait + 1.5)
        return types.ElicitResult(action="accept", content={})

    async def run() -> dict[str, types.CallToolResult]:
        params = _gateway(store, log, "--hold-wait", str(hold_wait))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, elicitation_callback=elicit) as s:
                await s.initialize()
                listed = {t.name for t in (await s.list_tools()).tools}
                assert listed == {"read_file", "delete_file", "transfer", "send_email"}
                out = {}
                out["allowed"] = await s.call_tool("transfer", {"amount": 500.0, "to": "supplier-a"})
                out["repaired"] = await s.call_tool(
                    "send_email", {"to": EMAIL_TO, "subject": "newsletter", "body": "hello"}
                )
                out["approved"] = await s.call_tool("delete_file", {"path": "/tmp/old.txt"})
                out["expired"] = await s.call_tool("delete_file", {"path": "/tmp/other.txt"})
                out["blocked"] = await s.call_tool("transfer", {"amount": 20000.0, "to": "attacker"})
                return out

    started = time.monotonic()
    r = anyio.run(run)
    assert time.monotonic() - started < 60

    assert not r["allowed"].is_error and _meta(r["allowed"])["final_outcome"] == "ALLOW"
    rep = _meta(r["repaired"])
    assert not r["repaired"].is_error and rep["final_outcome"] == "ALLOW_AFTER_REPAIR"
    assert rep["repaired"] == [{"variable": "preview", "argument": "preview", "from": False, "to": True}]
    assert _meta(r["approved"])["final_outcome"] == "HOLD_FOR_CONFIRMATION"
    assert not r["approved"].is_error
    assert _meta(r["approved"])["confirmation"]["status"] == "approved"
    assert r["expired"].is_error
    assert _meta(r["expired"])["confirmation"]["status"] == "expired"
    assert r["blocked"].is_error and _meta(r["blocked"])["final_outcome"] == "BLOCK_NO_REPAIR"
    assert "transfer-balance" in r["blocked"].content[0].text  # disclosure = "reasons"
    assert len(asked) == 2 and "delete_file" in asked[0]

    # What reached the tools: the allowed call, the repaired one with preview on, the
    # approved deletion; never the expired deletion nor the blocked transfer.
    executed = _executed(log)
    assert [e["tool"] for e in executed] == ["transfer", "send_email", "delete_file"]
    assert executed[0]["arguments"] == {"amount": 500.0, "to": "supplier-a"}
    assert executed[1]["arguments"]["preview"] is True and executed[1]["arguments"]["to"] == EMAIL_TO
    assert executed[2]["arguments"] == {"path": "/tmp/old.txt"}

    recs = _check_store(store, decisions=5)
    outcomes = [json.loads(x["decision"])["final_outcome"] for x in recs if x["kind"] == "decision"]
    assert outcomes == [
        "ALLOW",
        "ALLOW_AFTER_REPAIR",
        "HOLD_FOR_CONFIRMATION",
        "HOLD_FOR_CONFIRMATION",
        "BLOCK_NO_REPAIR",
    ]
    answers = [json.loads(x["decision"])["status"] for x in recs if x["kind"] == "confirmation"]
    assert answers == ["approved", "expired"]
    # Each forwarded call's upstream result is recorded by its digest.
    forwarded = [json.loads(x["decision"]) for x in recs if x["kind"] == "outcome"]
    assert [f["forwarded"] for f in forwarded] == ["proposal", "repaired", "approved"]
    assert all(f["upstream"]["result_sha256"].startswith("sha256:") for f in forwarded)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha(t: str) -> str:
    return hashlib.sha256(t.encode()).hexdigest()


def test_hold_answered_by_an_operator_of_aioss_serve(tmp_path: Path) -> None:
    agent_token, operator_token = "agent-secret-1", "operator-secret-1"
    config = tmp_path / "serve.toml"
    config.write_text(
        f"""
[server]
hold_expiry_secs = 60

[[agent]]
id = "demo-agent"
token_sha256 = "{_sha(agent_token)}"
attributes = {{ role = "admin", status = "active", trust = 0.9 }}

[[operator]]
id = "alice"
token_sha256 = "{_sha(operator_token)}"
attributes = {{ role = "supervisor" }}
"""
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [AIOSS, "serve", "--policy", POLICY, "--config", str(config), "--audit", str(tmp_path / "serve.db"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "aioss serve did not come up"
            time.sleep(0.1)

        op = {"Authorization": f"Bearer {operator_token}"}
        answered: list[str] = []

        def operator() -> None:
            # Answer the first hold with an approval and the second with a rejection.
            end = time.monotonic() + 40
            while len(answered) < 2 and time.monotonic() < end:
                pending = httpx.get(f"{url}/v1/confirmations", headers=op, timeout=5).json()["pending"]
                for h in pending:
                    verb = "approve" if not answered else "reject"
                    r = httpx.post(f"{url}/v1/confirmations/{h['id']}/{verb}", headers=op, json={"reason": "e2e"}, timeout=5)
                    assert r.status_code == 200, r.text
                    answered.append(verb)
                time.sleep(0.1)

        t = threading.Thread(target=operator, daemon=True)
        t.start()
        store, log = tmp_path / "audit.db", tmp_path / "executed.jsonl"

        async def run() -> tuple[types.CallToolResult, types.CallToolResult]:
            params = _gateway(store, log, "--hold-wait", "30", "--server", url, env={"AIOSS_SERVER_TOKEN": agent_token})
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as s:  # no elicitation
                    await s.initialize()
                    a = await s.call_tool("delete_file", {"path": "/tmp/approved.txt"})
                    b = await s.call_tool("delete_file", {"path": "/tmp/rejected.txt"})
                    return a, b

        a, b = anyio.run(run)
        t.join(timeout=5)
        assert answered == ["approve", "reject"]
        assert not a.is_error, a.content
        ca = _meta(a)["confirmation"]
        assert ca["status"] == "approved" and ca["by"]["id"] == "alice"
        assert b.is_error and _meta(b)["confirmation"]["status"] == "rejected"
        assert [e["arguments"]["path"] for e in _executed(log)] == ["/tmp/approved.txt"]
        _check_store(store, decisions=2)
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_a_mapping_error_is_reported_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tools.toml"
    text = Path(TOOLS).read_text().replace('amount = { arg = "amount" }', 'amount = { arg = "amont" }')
    bad.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if '"amont"' in l)
    p = subprocess.run(
        [AIOSS, "mcp", "--policy", POLICY, "--tools", str(bad), "--audit", str(tmp_path / "a.db"), "--",
         sys.executable, SERVER],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert p.stdout == ""  # standard output carries MCP and nothing else
    assert "the tool `transfer` has no argument `amont`" in p.stderr
    assert f"{bad}:{line}:" in p.stderr
    assert "did you mean `amount`?" in p.stderr
    assert not (tmp_path / "a.db").exists()  # nothing was served or recorded


def _wait_http(url: str, proc: subprocess.Popen[str], expect: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(url, timeout=1).status_code == expect:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up"
        time.sleep(0.1)


def test_streamable_http_agents_by_bearer_token(tmp_path: Path) -> None:
    admin_token, support_token, operator_token = "fleet-admin-secret", "fleet-support-secret", "op-secret"
    config = tmp_path / "fleet.toml"
    config.write_text(
        f"""
[[agent]]
id = "fleet-admin"
token_sha256 = "{_sha(admin_token)}"
attributes = {{ role = "admin", status = "active", trust = 0.9 }}

[[agent]]
id = "fleet-support"
token_sha256 = "{_sha(support_token)}"
attributes = {{ role = "support", status = "active", trust = 0.8 }}

[[operator]]
id = "alice"
token_sha256 = "{_sha(operator_token)}"
"""
    )
    store, log = tmp_path / "audit.db", tmp_path / "executed.jsonl"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = dict(os.environ)
    env["AIOSS_DEMO_LOG"] = str(log)
    gw = subprocess.Popen(
        [AIOSS, "mcp", "--policy", POLICY, "--tools", TOOLS, "--audit", str(store), "--listen",
         f"127.0.0.1:{port}", "--config", str(config), "--", sys.executable, SERVER],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    try:
        _wait_http(url, gw, 401)

        asked: list[str] = []

        async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked.append(params.message)
            return types.ElicitResult(action="accept", content={"reason": "over http"})

        async def session(token: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[set[str], list[types.CallToolResult]]:
            client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
            async with client:
                async with streamable_http_client(url, http_client=client) as (read, write):
                    async with ClientSession(read, write, elicitation_callback=elicit) as s:
                        await s.initialize()
                        listed = {t.name for t in (await s.list_tools()).tools}
                        return listed, [await s.call_tool(name, args) for name, args in calls]

        listed, (allowed, blocked, held) = anyio.run(
            session,
            admin_token,
            [("transfer", {"amount": 500.0, "to": "supplier-a"}), ("transfer", {"amount": 20000.0, "to": "attacker"}),
             ("delete_file", {"path": "/tmp/held.txt"})],
        )
        assert listed == {"read_file", "delete_file", "transfer", "send_email"}
        assert not allowed.is_error and _meta(allowed)["final_outcome"] == "ALLOW", allowed.content
        assert blocked.is_error and _meta(blocked)["final_outcome"] == "BLOCK_NO_REPAIR"
        # A hold asked through elicitation on the request's event stream, and approved.
        assert _meta(held)["final_outcome"] == "HOLD_FOR_CONFIRMATION"
        assert not held.is_error and _meta(held)["confirmation"]["status"] == "approved", held.content
        assert len(asked) == 1 and "delete_file" in asked[0]

        # The support agent's role may not transfer: hidden from its tools/list, and a call
        # of it refused before it is a proposal.
        listed, (refused,) = anyio.run(session, support_token, [("transfer", {"amount": 5.0, "to": "x"})])
        assert "transfer" not in listed and "send_email" in listed
        assert refused.is_error and "not offered" in refused.content[0].text

        # Without a valid agent token nothing is served, and nothing is recorded.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}
        hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        for auth, code in [(None, 401), ("Bearer not-a-token", 401), ("Basic abc", 401),
                           (f"Bearer {operator_token}", 403)]:
            h = dict(hdrs)
            if auth:
                h["Authorization"] = auth
            r = httpx.post(url, json=init, headers=h, timeout=10)
            assert r.status_code == code, (auth, r.status_code, r.text)
            assert "error" in r.json()
        try:
            anyio.run(session, "not-a-token", [("transfer", {"amount": 1.0, "to": "x"})])
            raise AssertionError("an unknown token was served")
        except Exception as e:  # the SDK raises on the 401 (the exact type is its own)
            assert not isinstance(e, AssertionError), e

        # SIGTERM: the gateway stops, committing the store.
        gw.terminate()
        assert gw.wait(timeout=30) == 0, gw.stderr.read() if gw.stderr else ""
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait(timeout=30)
    assert gw.stdout is not None and gw.stdout.read() == ""

    # Only the admin's allowed transfer and approved deletion reached the tool.
    assert _executed(log) == [
        {"tool": "transfer", "arguments": {"amount": 500.0, "to": "supplier-a"}},
        {"tool": "delete_file", "arguments": {"path": "/tmp/held.txt"}},
    ]
    recs = _check_store(store, decisions=3)
    decisions = [json.loads(x["proposal"]) for x in recs if x["kind"] == "decision"]
    # The proposals' agent and attributes are the token's, not the mapping's [session].
    assert [d["agent"] for d in decisions] == ["fleet-admin"] * 3
    assert all(d["agent_attributes"]["role"] == "admin" for d in decisions)
    refused_recs = [json.loads(x["proposal"]) for x in recs if x["kind"] == "refused"]
    assert [(r["by"]["id"], r["tool"]) for r in refused_recs] == [("fleet-support", "transfer")]


def test_upstream_by_url(tmp_path: Path) -> None:
    store, log = tmp_path / "audit.db", tmp_path / "executed.jsonl"
    port = _free_port()
    env = dict(os.environ)
    env["AIOSS_DEMO_LOG"] = str(log)
    tools = subprocess.Popen(
        [sys.executable, SERVER, "--http", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The SDK's server answers a GET without a session with 4xx once it is up.
        deadline = time.monotonic() + 60
        while True:
            assert tools.poll() is None, tools.stderr.read() if tools.stderr else ""
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the tools server did not come up"
                time.sleep(0.1)

        async def run() -> tuple[set[str], types.CallToolResult, types.CallToolResult]:
            params = StdioServerParameters(
                command=AIOSS,
                args=["mcp", "--policy", POLICY, "--tools", TOOLS, "--audit", str(store), "--",
                      f"http://127.0.0.1:{port}/mcp"],
                cwd=str(ROOT),
            )
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    listed = {t.name for t in (await s.list_tools()).tools}
                    a = await s.call_tool("transfer", {"amount": 500.0, "to": "supplier-a"})
                    b = await s.call_tool("transfer", {"amount": 20000.0, "to": "attacker"})
                    return listed, a, b

        listed, allowed, blocked = anyio.run(run)
    finally:
        tools.terminate()
        tools.wait(timeout=30)
    assert listed == {"read_file", "delete_file", "transfer", "send_email"}
    assert not allowed.is_error and _meta(allowed)["final_outcome"] == "ALLOW", allowed.content
    assert "transferred 500.0 EUR to supplier-a" in allowed.content[0].text
    assert _meta(allowed)["upstream"]["result_sha256"].startswith("sha256:")
    assert blocked.is_error and _meta(blocked)["final_outcome"] == "BLOCK_NO_REPAIR"
    assert _executed(log) == [{"tool": "transfer", "arguments": {"amount": 500.0, "to": "supplier-a"}}]
    _check_store(store, decisions=2)


def test_streamable_http_hold_answered_at_aioss_serve_as_the_caller(tmp_path: Path) -> None:
    # One configuration for both processes: `aioss mcp --listen` puts a held call to
    # `aioss serve` with the calling agent's own token (no AIOSS_SERVER_TOKEN), so the
    # server sees the same agent, and its operator answers.
    agent_token, operator_token = "fleet-agent-2", "fleet-operator-2"
    config = tmp_path / "fleet.toml"
    config.write_text(
        f"""
[server]
hold_expiry_secs = 60

[[agent]]
id = "fleet-admin"
token_sha256 = "{_sha(agent_token)}"
attributes = {{ role = "admin", status = "active", trust = 0.9 }}

[[operator]]
id = "bob"
token_sha256 = "{_sha(operator_token)}"
"""
    )
    serve_port, mcp_port = _free_port(), _free_port()
    server = f"http://127.0.0.1:{serve_port}"
    url = f"http://127.0.0.1:{mcp_port}/mcp"
    store, log = tmp_path / "audit.db", tmp_path / "executed.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "AIOSS_SERVER_TOKEN"}
    env["AIOSS_DEMO_LOG"] = str(log)
    procs: list[subprocess.Popen[str]] = []
    try:
        serve = subprocess.Popen(
            [AIOSS, "serve", "--policy", POLICY, "--config", str(config), "--audit", str(tmp_path / "serve.db"),
             "--listen", f"127.0.0.1:{serve_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        procs.append(serve)
        _wait_http(f"{server}/healthz", serve, 200)
        gw = subprocess.Popen(
            [AIOSS, "mcp", "--policy", POLICY, "--tools", TOOLS, "--audit", str(store), "--listen",
             f"127.0.0.1:{mcp_port}", "--config", str(config), "--server", server, "--hold-wait", "30",
             "--", sys.executable, SERVER],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=env, cwd=str(ROOT),
        )
        procs.append(gw)
        _wait_http(url, gw, 401)

        op = {"Authorization": f"Bearer {operator_token}"}
        answered: list[dict[str, Any]] = []

        def operator() -> None:
            end = time.monotonic() + 40
            while not answered and time.monotonic() < end:
                for h in httpx.get(f"{server}/v1/confirmations", headers=op, timeout=5).json()["pending"]:
                    r = httpx.post(f"{server}/v1/confirmations/{h['id']}/approve", headers=op, json={}, timeout=5)
                    assert r.status_code == 200, r.text
                    answered.append(h)
                time.sleep(0.1)

        t = threading.Thread(target=operator, daemon=True)
        t.start()

        async def run() -> types.CallToolResult:
            client = create_mcp_http_client(headers={"Authorization": f"Bearer {agent_token}"})
            async with client:
                async with streamable_http_client(url, http_client=client) as (read, write):
                    async with ClientSession(read, write) as s:  # no elicitation
                        await s.initialize()
                        return await s.call_tool("delete_file", {"path": "/tmp/by-operator.txt"})

        held = anyio.run(run)
        t.join(timeout=5)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
    assert len(answered) == 1
    assert not held.is_error, held.content
    c = _meta(held)["confirmation"]
    assert c["status"] == "approved" and c["by"]["id"] == "bob"
    assert _executed(log) == [{"tool": "delete_file", "arguments": {"path": "/tmp/by-operator.txt"}}]
    _check_store(store, decisions=1)
