"""Fixtures: a real `aioss serve` (the binary from `AIOSS_BIN`, default
`target/debug/aioss`) on a free loopback port, with the agent-tools policy."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
AIOSS = os.environ.get("AIOSS_BIN", str(ROOT / "target" / "debug" / "aioss"))
POLICY = str(ROOT / "policies" / "agent-tools.toml")

AGENT_TOKEN = "agent-token-for-tests"
OPERATOR_TOKEN = "operator-token-for-tests"
ATTRIBUTES = {"role": "admin", "status": "active", "trust": 0.9}


@dataclass
class Serve:
    url: str
    store: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha(t: str) -> str:
    return hashlib.sha256(t.encode()).hexdigest()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    assert Path(AIOSS).exists(), f"build the aioss binary first ({AIOSS}): cargo build -p aioss"
    config = tmp_path / "serve.toml"
    config.write_text(
        f"""
[server]
hold_expiry_secs = 3

[[agent]]
id = "py-agent"
token_sha256 = "{_sha(AGENT_TOKEN)}"
attributes = {{ role = "admin", status = "active", trust = 0.9 }}

[[operator]]
id = "olga"
token_sha256 = "{_sha(OPERATOR_TOKEN)}"
attributes = {{ role = "supervisor" }}
"""
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    store = tmp_path / "audit.db"
    p = subprocess.Popen(
        [AIOSS, "serve", "--policy", POLICY, "--config", str(config), "--audit", str(store), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert p.poll() is None, "aioss serve exited"
            assert time.monotonic() < deadline, "aioss serve did not come up"
            time.sleep(0.1)
        yield Serve(url, store)
    finally:
        p.terminate()
        p.wait(timeout=30)
