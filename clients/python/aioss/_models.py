"""The server's JSON, typed (pydantic). Fields the server adds later are kept (extra)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FinalOutcome = Literal[
    "ALLOW",
    "HOLD_FOR_CONFIRMATION",
    "ALLOW_AFTER_REPAIR",
    "BLOCK_NO_REPAIR",
    "REVIEW_AUDIT",
    "FAILED_GOVERNANCE",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class RecordRef(_Model):
    """Where a record sits in the audit chain."""

    seq: int
    hash: str
    prev_hash: str


class Confirmation(_Model):
    """A hold's state: ``pending``, then ``approved``, ``rejected``, ``expired``, ``refused``
    (or ``unanswered`` after a restart: treat it as denied)."""

    status: str
    decision_id: str | None = None
    by: dict[str, Any] | None = None
    reason: str | None = None
    action: dict[str, Any] | None = None
    action_digest: str | None = None
    expires: str | None = None

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def pending(self) -> bool:
        return self.status == "pending"


class Decision(_Model):
    """One decision of the governor."""

    decision_id: str
    final_outcome: FinalOutcome
    action: dict[str, Any]
    id: str | None = None
    agent: str | None = None
    classification: str | None = None
    evaluation: str | None = None
    audit: str | None = None
    repair_status: str | None = None
    reasons: list[str] = []
    constraints: list[dict[str, Any]] = []
    candidate: dict[str, Any] | None = None
    record: RecordRef | None = None
    confirmation: Confirmation | None = None

    @property
    def allowed(self) -> bool:
        """The action may run now (as proposed, or repaired: run :attr:`action`)."""
        return self.final_outcome in ("ALLOW", "ALLOW_AFTER_REPAIR")

    @property
    def held(self) -> bool:
        return self.final_outcome == "HOLD_FOR_CONFIRMATION"


class Outcome(_Model):
    """The re-evaluation of a decision from its observed outcome."""

    decision_id: str
    evaluation: Literal["EFFECTIVE", "FAILED"]
    left_safe_set: list[str] = []
    failure_modes: list[str] = []
    reasons: list[str] = []
    record: RecordRef | None = None
