"""Sync and async HTTP clients of ``aioss serve`` (docs/http-api.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from ._errors import AiossError
from ._models import Decision, Outcome

#: The longest single long poll the server allows by default (``long_poll_max_secs``).
LONG_POLL_SECS = 30


def _proposal(
    action: Mapping[str, Any],
    state: Mapping[str, Any] | None,
    agent: str | None,
    agent_attributes: Mapping[str, Any] | None,
    id: str | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": dict(action)}
    if state is not None:
        body["state"] = dict(state)
    if agent is not None:
        body["agent"] = agent
    if agent_attributes is not None:
        body["agent_attributes"] = dict(agent_attributes)
    if id is not None:
        body["id"] = id
    body.update(extra)
    return body


def _check(r: httpx.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        raise AiossError(r.status_code, err.get("code", "http_error"), err.get("message", r.text), err.get("field"), body)
    return body


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _settled(d: Decision) -> bool:
    return d.confirmation is not None and not d.confirmation.pending


class Client:
    """A synchronous client of ``aioss serve``.

    ``token`` is the agent's (or an operator's) bearer token; without one the server must
    be in local-development mode.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(token))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def decide(
        self,
        action: Mapping[str, Any],
        state: Mapping[str, Any] | None = None,
        *,
        agent: str | None = None,
        agent_attributes: Mapping[str, Any] | None = None,
        id: str | None = None,
        **extra: Any,
    ) -> Decision:
        """Propose ``action`` in ``state``; the decision, once its record is durable."""
        body = _proposal(action, state, agent, agent_attributes, id, extra)
        return Decision.model_validate(_check(self._http.post("/v1/decisions", json=body)))

    def get(self, decision_id: str, wait: float | None = None) -> Decision:
        """The decision (with its hold's ``confirmation``); ``wait`` long-polls a pending hold."""
        params = {"wait": str(int(wait))} if wait else None
        t = self._http.timeout.read or 10.0
        r = self._http.get(f"/v1/decisions/{decision_id}", params=params, timeout=(wait or 0) + t)
        return Decision.model_validate(_check(r))

    def wait(self, decision_id: str, timeout: float) -> Decision:
        """Wait up to ``timeout`` seconds for the answer to a hold; the decision with its
        ``confirmation`` (still ``pending`` if nobody answered in time)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            d = self.get(decision_id, wait=max(1, min(LONG_POLL_SECS, int(left))) if left >= 1 else None)
            if _settled(d) or d.confirmation is None or time.monotonic() >= deadline:
                return d

    def report_outcome(self, decision_id: str, state: Mapping[str, Any]) -> Outcome:
        """Report the state observed after executing the decision's action."""
        r = self._http.post(f"/v1/decisions/{decision_id}/outcome", json={"state": dict(state)})
        return Outcome.model_validate(_check(r))


class AsyncClient:
    """The asynchronous twin of :class:`Client`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=_headers(token))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def decide(
        self,
        action: Mapping[str, Any],
        state: Mapping[str, Any] | None = None,
        *,
        agent: str | None = None,
        agent_attributes: Mapping[str, Any] | None = None,
        id: str | None = None,
        **extra: Any,
    ) -> Decision:
        body = _proposal(action, state, agent, agent_attributes, id, extra)
        return Decision.model_validate(_check(await self._http.post("/v1/decisions", json=body)))

    async def get(self, decision_id: str, wait: float | None = None) -> Decision:
        params = {"wait": str(int(wait))} if wait else None
        t = self._http.timeout.read or 10.0
        r = await self._http.get(f"/v1/decisions/{decision_id}", params=params, timeout=(wait or 0) + t)
        return Decision.model_validate(_check(r))

    async def wait(self, decision_id: str, timeout: float) -> Decision:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            d = await self.get(decision_id, wait=max(1, min(LONG_POLL_SECS, int(left))) if left >= 1 else None)
            if _settled(d) or d.confirmation is None or time.monotonic() >= deadline:
                return d

    async def report_outcome(self, decision_id: str, state: Mapping[str, Any]) -> Outcome:
        r = await self._http.post(f"/v1/decisions/{decision_id}/outcome", json={"state": dict(state)})
        return Outcome.model_validate(_check(r))
