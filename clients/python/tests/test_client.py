"""The client against a real `aioss serve` (started per test by the `serve` fixture)."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import anyio
import httpx
import pytest

from aioss import AiossError, AsyncClient, Client, Denied, NotExecutable, governed

from .conftest import AGENT_TOKEN, AIOSS, OPERATOR_TOKEN, POLICY, Serve

NOOP = {
    "tool": "noop",
    "amount": 0.0,
    "recipients": 0,
    "file_count": 0,
    "write_mb": 0.0,
    "tokens": 0,
    "external": False,
    "preview": False,
}
STATE = {
    "session_risk": "low",
    "user_confirmed": False,
    "sandboxed": True,
    "protected_dir": False,
    "pii_detected": False,
    "injection_score": 0.0,
    "balance": 10000.0,
    "task_description": "python client tests",
}


def _operator(serve: Serve, verb: str, n: int = 1) -> threading.Thread:
    """Answer the next `n` pending holds with `verb` (approve / reject), in a thread."""

    def run() -> None:
        h = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        done = 0
        end = time.monotonic() + 20
        while done < n and time.monotonic() < end:
            for hold in httpx.get(f"{serve.url}/v1/confirmations", headers=h, timeout=5).json()["pending"]:
                httpx.post(f"{serve.url}/v1/confirmations/{hold['id']}/{verb}", headers=h, json={}, timeout=5)
                done += 1
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_decide_typed_decisions_and_records(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        d = c.decide({**NOOP, "tool": "transfer", "amount": 200.0}, STATE)
        assert d.final_outcome == "ALLOW" and d.allowed and not d.held
        assert d.action["amount"] == 200 and d.record is not None and d.record.seq >= 0
        b = c.decide({**NOOP, "tool": "transfer", "amount": 20000.0}, STATE)
        assert b.final_outcome == "BLOCK_NO_REPAIR" and b.action["tool"] == "noop"
        assert any("transfer-balance" in r for r in b.reasons)
        assert c.get(d.decision_id).decision_id == d.decision_id


def test_refusals_are_typed_errors(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        with pytest.raises(AiossError) as e:
            c.decide({**NOOP, "tool": "teleport"}, STATE)
        assert e.value.status == 400 and e.value.code == "unknown_enum_value" and e.value.field == "action.tool"
    with Client(serve.url, "not-a-token") as bad, pytest.raises(AiossError) as e:
        bad.decide(NOOP, STATE)
    assert e.value.status == 401


def test_wait_on_a_hold_that_an_operator_approves(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        d = c.decide({**NOOP, "tool": "delete_file", "file_count": 1}, STATE)
        assert d.held
        t = _operator(serve, "approve")
        w = c.wait(d.decision_id, timeout=15)
        t.join(5)
        assert w.confirmation is not None and w.confirmation.approved
        assert w.confirmation.by is not None and w.confirmation.by["id"] == "olga"


def test_an_unanswered_hold_expires(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        d = c.decide({**NOOP, "tool": "delete_file", "file_count": 1}, STATE)
        w = c.wait(d.decision_id, timeout=10)  # the server's holds expire after 3 s
        assert w.confirmation is not None and w.confirmation.status == "expired"


def test_report_outcome(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        d = c.decide({**NOOP, "tool": "read_file", "file_count": 1}, STATE)
        o = c.report_outcome(d.decision_id, STATE)
        assert o.decision_id == d.decision_id and o.evaluation == "EFFECTIVE"


def test_governed_runs_with_the_executed_arguments(serve: Serve) -> None:
    sent: list[dict[str, Any]] = []
    c = Client(serve.url, AGENT_TOKEN)

    @governed(
        c,
        defaults=NOOP,
        arguments={"preview": "preview"},
        derive={"recipients": lambda a: len(a["to"])},
        state=lambda: STATE,
    )
    def send_email(to: list[str], subject: str, preview: bool = False) -> str:
        sent.append({"to": to, "subject": subject, "preview": preview})
        return "ok"

    assert send_email(["a@x"], "hi") == "ok"
    assert send_email.last_decision.final_outcome == "ALLOW"  # type: ignore[attr-defined]
    many = [f"p{i}@x" for i in range(12)]
    assert send_email(many, "newsletter") == "ok"
    assert send_email.last_decision.final_outcome == "ALLOW_AFTER_REPAIR"  # type: ignore[attr-defined]
    assert sent == [
        {"to": ["a@x"], "subject": "hi", "preview": False},
        {"to": many, "subject": "newsletter", "preview": True},  # repaired: preview on
    ]

    @governed(c, defaults=NOOP, arguments={"amount": "amount"}, state=STATE)
    def transfer(amount: float, to: str) -> str:
        sent.append({"amount": amount})
        return "paid"

    with pytest.raises(Denied) as e:
        transfer(20000.0, "mallory")
    assert e.value.decision.final_outcome == "BLOCK_NO_REPAIR"
    assert len(sent) == 2  # the blocked transfer never ran

    @governed(c, defaults=NOOP, derive={"file_count": lambda a: len(a["paths"])}, state=STATE)
    def delete_file(paths: list[str]) -> int:
        return len(paths)

    t = _operator(serve, "approve")
    assert delete_file(["/tmp/a"]) == 1  # held, approved by the operator, then run
    t.join(5)
    t = _operator(serve, "reject")
    with pytest.raises(Denied) as e:
        delete_file(["/tmp/b"])
    t.join(5)
    assert "rejected" in e.value.reason
    c.close()


def test_a_repair_of_a_derived_variable_is_not_executed(serve: Serve) -> None:
    # 501 files read is repaired to the 500-file cap; the count is derived from the list,
    # so the function cannot be run "repaired": it raises instead of running.
    ran: list[int] = []
    with Client(serve.url, AGENT_TOKEN) as c:

        @governed(c, defaults=NOOP, derive={"file_count": lambda a: len(a["paths"])}, state=STATE)
        def read_file(paths: list[str]) -> None:
            ran.append(len(paths))

        with pytest.raises(NotExecutable) as e:
            read_file([f"/f{i}" for i in range(501)])
        assert e.value.variable == "file_count" and ran == []


def test_async_client_and_async_governed(serve: Serve) -> None:
    async def main() -> list[str]:
        out: list[str] = []
        async with AsyncClient(serve.url, AGENT_TOKEN) as ac:
            d = await ac.decide({**NOOP, "tool": "search", "tokens": 100}, STATE)
            assert d.final_outcome == "ALLOW"

            @governed(ac, tool="read_file", defaults=NOOP, derive={"file_count": lambda a: 1}, state=STATE)
            async def read(path: str) -> str:
                out.append(path)
                return path

            assert await read("/etc/hosts") == "/etc/hosts"
        return out

    assert anyio.run(main) == ["/etc/hosts"]


def test_the_store_verifies_after_the_client_tests(serve: Serve) -> None:
    with Client(serve.url, AGENT_TOKEN) as c:
        c.decide({**NOOP, "tool": "search"}, STATE)
    v = subprocess.run([AIOSS, "audit", "verify", str(serve.store)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    r = subprocess.run([AIOSS, "audit", "replay", str(serve.store), "--policy", POLICY], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
