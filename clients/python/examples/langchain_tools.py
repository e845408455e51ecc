"""Governed tools for a LangChain agent (an example; not run by CI, which does not install
LangChain).

    pip install -e clients/python langchain-core
    aioss serve --policy policies/agent-tools.toml --config serve.toml   # an agent token
    AIOSS_TOKEN=... python3 clients/python/examples/langchain_tools.py

Each tool is a plain function governed by AIOSS first (`@governed`) and then exposed to
LangChain (`@tool`): the agent's tool call is decided, repaired, held or refused before the
function body runs. A refusal reaches the model as the tool's error text.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.tools import tool  # type: ignore[import-not-found]

from aioss import Client, Denied, governed

client = Client(os.environ.get("AIOSS_URL", "http://127.0.0.1:8080"), os.environ.get("AIOSS_TOKEN"))

# Every action variable of policies/agent-tools.toml at its fallback value: what a tool
# does not set stays off.
NOOP: dict[str, Any] = {
    "tool": "noop", "amount": 0.0, "recipients": 0, "file_count": 0,
    "write_mb": 0.0, "tokens": 0, "external": False, "preview": False,
}


def session_state() -> dict[str, Any]:
    """The session's state, from where the agent cannot write it (here: fixed)."""
    return {
        "session_risk": "low", "user_confirmed": False, "sandboxed": True, "protected_dir": False,
        "pii_detected": False, "injection_score": 0.0, "balance": 10000.0,
        "task_description": "LangChain example",
    }


@governed(client, defaults=NOOP, arguments={"amount": "amount"}, state=session_state)
def _transfer(amount: float, to: str) -> str:
    return f"transferred {amount} EUR to {to}"


@governed(client, defaults=NOOP, arguments={"preview": "preview"},
          derive={"recipients": lambda a: len(a["to"])}, state=session_state)
def _send_email(to: list[str], subject: str, body: str, preview: bool = False) -> str:
    return ("previewed" if preview else "sent") + f" an e-mail to {len(to)} recipients"


@tool
def transfer(amount: float, to: str) -> str:
    """Transfer `amount` EUR to the account `to`."""
    try:
        return _transfer(amount, to)
    except Denied as e:
        return f"refused by policy: {e.reason}"


@tool
def send_email(to: list[str], subject: str, body: str) -> str:
    """Send an e-mail."""
    try:
        return _send_email(to, subject, body)
    except Denied as e:
        return f"refused by policy: {e.reason}"


if __name__ == "__main__":
    # What an agent's tool calls would do:
    print(transfer.invoke({"amount": 250.0, "to": "supplier-a"}))
    print(send_email.invoke({"to": [f"p{i}@example.com" for i in range(12)], "subject": "hi", "body": "..."}))
    print(transfer.invoke({"amount": 20000.0, "to": "unknown"}))
