"""Errors of the AIOSS client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Decision


class AiossError(Exception):
    """The server refused a request: ``{"error": {"code", "message", "field"}}``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field `{field}`)" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body


class Denied(Exception):
    """The governor did not let the call run: blocked, sent for review, or a hold that was
    rejected, expired or not answered in time."""

    def __init__(self, decision: Decision, reason: str) -> None:
        super().__init__(f"{decision.final_outcome} ({decision.decision_id}): {reason}")
        self.decision = decision
        self.reason = reason


class NotExecutable(Exception):
    """A repair changed something the governed function cannot take as an argument (the
    tool itself, a derived or constant variable)."""

    def __init__(self, decision: Decision, variable: str) -> None:
        super().__init__(
            f"the repair of {decision.decision_id} changed `{variable}`, which is not an argument of the function"
        )
        self.decision = decision
        self.variable = variable
