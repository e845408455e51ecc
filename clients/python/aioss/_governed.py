"""``@governed``: decide each call of a tool function first, run it with the executed
arguments."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._client import AsyncClient, Client
from ._errors import Denied, NotExecutable
from ._models import Decision

F = TypeVar("F", bound=Callable[..., Any])

StateSource = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


class _Plan:
    def __init__(
        self,
        fn: Callable[..., Any],
        tool: str | None,
        tool_var: str,
        defaults: Mapping[str, Any],
        arguments: Mapping[str, str],
        derive: Mapping[str, Callable[[dict[str, Any]], Any]],
        state: StateSource | None,
    ) -> None:
        self.sig = inspect.signature(fn)
        self.tool = tool or fn.__name__
        self.tool_var = tool_var
        self.defaults = dict(defaults)
        self.arguments = dict(arguments)
        self.derive = dict(derive)
        self.state = state
        for var, param in self.arguments.items():
            if param not in self.sig.parameters:
                raise TypeError(f"@governed: `{param}` (for `{var}`) is not a parameter of {fn.__name__}")

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        b = self.sig.bind(*args, **kwargs)
        b.apply_defaults()
        return dict(b.arguments)

    def action(self, call: dict[str, Any]) -> dict[str, Any]:
        a = dict(self.defaults)
        a[self.tool_var] = self.tool
        for var, param in self.arguments.items():
            a[var] = call[param]
        for var, f in self.derive.items():
            a[var] = f(call)
        return a

    def state_now(self) -> dict[str, Any] | None:
        if self.state is None:
            return None
        s = self.state() if callable(self.state) else self.state
        return dict(s)

    def executed(self, d: Decision, call: dict[str, Any], proposed: dict[str, Any], hold: Decision | None) -> dict[str, Any]:
        """The arguments to run with, or raise."""
        if d.final_outcome == "ALLOW":
            return call
        if d.final_outcome == "ALLOW_AFTER_REPAIR":
            out = dict(call)
            for var, value in d.action.items():
                if value == proposed.get(var):
                    continue
                param = self.arguments.get(var)
                if param is None:
                    raise NotExecutable(d, var)
                out[param] = value
            return out
        if d.final_outcome == "HOLD_FOR_CONFIRMATION":
            c = hold.confirmation if hold is not None else None
            if c is not None and c.approved:
                return call
            status = c.status if c is not None else "unanswered"
            raise Denied(d, f"the hold was {status}" + (f": {c.reason}" if c is not None and c.reason else ""))
        raise Denied(d, "; ".join(d.reasons) or d.final_outcome)


def governed(
    client: Client | AsyncClient,
    *,
    tool: str | None = None,
    tool_var: str = "tool",
    defaults: Mapping[str, Any] | None = None,
    arguments: Mapping[str, str] | None = None,
    derive: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
    state: StateSource | None = None,
    hold_timeout: float = 300.0,
) -> Callable[[F], F]:
    """Govern a tool function: each call is proposed to the governor first.

    * ``tool``: the value of the policy's tool variable ``tool_var`` (default: the
      function's name);
    * ``defaults``: every other action variable's value (e.g. the policy's fallback);
    * ``arguments``: action variable -> the function parameter that gives it (and takes
      its repaired value back);
    * ``derive``: action variable -> a function of the bound arguments (e.g. a list's
      length); a repair that changes one raises :class:`NotExecutable`;
    * ``state``: the state to decide in, or a function returning it at each call;
    * ``hold_timeout``: how long a held call waits for an operator.

    ALLOW runs the function as called; ALLOW_AFTER_REPAIR runs it with the repaired
    arguments; HOLD_FOR_CONFIRMATION waits for the answer and runs it if approved; any other
    outcome, or a hold not approved in time, raises :class:`Denied`. The decision of the
    last call is kept as ``wrapper.last_decision``. A coroutine function needs an
    :class:`AsyncClient`.
    """

    def wrap(fn: F) -> F:
        plan = _Plan(fn, tool, tool_var, defaults or {}, arguments or {}, derive or {}, state)
        if inspect.iscoroutinefunction(fn):
            if not isinstance(client, AsyncClient):
                raise TypeError("@governed: an async function needs an AsyncClient")
            ac = client

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                call = plan.bind(args, kwargs)
                proposed = plan.action(call)
                d = await ac.decide(proposed, plan.state_now())
                awrapper.last_decision = d  # type: ignore[attr-defined]
                hold = await ac.wait(d.decision_id, hold_timeout) if d.held else None
                return await fn(**plan.executed(d, call, proposed, hold))

            return awrapper  # type: ignore[return-value]
        if not isinstance(client, Client):
            raise TypeError("@governed: a plain function needs a Client")
        sc = client

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = plan.bind(args, kwargs)
            proposed = plan.action(call)
            d = sc.decide(proposed, plan.state_now())
            wrapper.last_decision = d  # type: ignore[attr-defined]
            hold = sc.wait(d.decision_id, hold_timeout) if d.held else None
            return fn(**plan.executed(d, call, proposed, hold))

        return wrapper  # type: ignore[return-value]

    return wrap
