"""Python client of the AIOSS execution governor (`aioss serve`).

* :class:`Client` (sync) and :class:`AsyncClient` (async, both on ``httpx``):
  :meth:`~Client.decide` a proposal, :meth:`~Client.wait` for the answer to a hold,
  :meth:`~Client.report_outcome` with the observed state.
* :func:`governed`: a decorator that decides each call of a plain Python tool function first
  and runs it with the executed arguments (the repaired ones after a repair, after an
  approval for a hold), or raises :class:`Denied`.
"""

from ._client import AsyncClient, Client
from ._errors import AiossError, Denied, NotExecutable
from ._governed import governed
from ._models import Confirmation, Decision, Outcome, RecordRef

__all__ = [
    "AiossError",
    "AsyncClient",
    "Client",
    "Confirmation",
    "Decision",
    "Denied",
    "NotExecutable",
    "Outcome",
    "RecordRef",
    "governed",
]
