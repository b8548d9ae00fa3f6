"""How an agent loop ends: its ``Ending``, and whether a failed one may pass if retried.

The loop raises an ``Ending`` to stop; the worker records it as the run's output and
final status (``agent.worker.record_ending``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentctl.errors import MissingKeyError, PermanentError, TransientError
from agentctl.runs.record import Failure


class Ending(Exception):
    """How the loop ended: a run status, a kind of ending, a reason and the output.

    ``failure`` classes a failed ending for whoever decides on a retry (see
    ``runs.record.Failure``): None when retrying might or might not help.
    """

    def __init__(
        self,
        status: str,
        ending: str,
        reason: str,
        output: Mapping[str, Any] | None = None,
        *,
        failure: Failure | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.ending = ending
        self.reason = reason
        self.output = dict(output or {})
        self.failure = failure


def failure_of(exc: BaseException) -> Failure | None:
    """Can a later attempt pass where ``exc`` stopped this one?

    A provider that stayed down or rate-limited through the client's own retries:
    transient. A wrong or missing key, a refused request, an exhausted quota: permanent.
    """
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError | MissingKeyError):
        return "permanent"
    return None
