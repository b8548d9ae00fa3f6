"""The one error tree of agentctl.

Every failure a user can meet is one of these; vendor exceptions are translated
at the adapter (``raise X(...) from exc``) and the CLI catches ``AgentctlError``
once, prints one line and exits with ``exit_code``::

    AgentctlError                 exit 1  something failed
    ├── UsageError                exit 2  the command line is wrong
    ├── ConfigError               exit 2  a TOML file is wrong (file, line, fix)
    │   └── SecretsFileError              the [secrets] file is missing, malformed or
    │                                     readable by others
    ├── WorkspaceError            exit 2  no git repository / workspace where one is needed
    ├── NotFoundError             exit 2  a named run, role, pipeline or model does not exist
    ├── StateError                exit 1  a state file could not be read or written
    │   ├── CorruptStateError             a state file is unreadable (set aside, never guessed)
    │   ├── FutureStateError              a state file from a newer agentctl
    │   └── TransitionError               an illegal run status change
    ├── MissingKeyError           exit 2  a model's API key variable is not set
    ├── PreflightError            exit 2  a pipeline would fail at its gate or merge whatever
    │                                     its agents did: refused before any model call
    ├── BudgetExceeded            exit 1  a call would pass a budget: nothing was sent
    ├── GitError                  exit 1  a git operation failed (command and git's words)
    │   ├── MergeRefusedError             a merge was refused: moved head, not a fast-forward,
    │   │                                 dirty base checkout, closed pull request
    │   └── ConflictMarkersError          a commit still holding conflict markers
    ├── ServiceError              exit 1  a tracker or forge call failed (service, status, code)
    │   ├── ServiceUnavailableError       worth retrying: rate limited, 5xx, unreachable
    │   │   └── ServiceRateLimitedError   the service asked us to slow down
    │   └── ServiceRejectedError          retrying cannot help: bad input, not found
    │       └── ServiceAuthError          exit 2  the token is wrong or lacks access
    └── ProviderError             exit 1  a model call failed (model, status, request id)
        ├── TransientError                worth retrying: 408/409/429/5xx/529, timeouts,
        │   │                             resets, stalls, mid-stream errors
        │   └── RateLimitedError          429 with the wait the server asked for
        └── PermanentError                retrying cannot help
            ├── AuthError                 401/403: the key is wrong or lacks access
            ├── QuotaError                402, insufficient_quota, billing: pause, do not retry
            └── BadRequestError           400/404/413/422: the request itself is wrong
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AgentctlError(Exception):
    """Base of every error agentctl reports to a user."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message

    def without_hint(self) -> str:
        """What ``str`` says, minus the hint: for a view that shows the hint on its own."""
        hint, self.hint = self.hint, None
        try:
            return str(self)
        finally:
            self.hint = hint


class UsageError(AgentctlError):
    exit_code = EXIT_USAGE


class WorkspaceError(AgentctlError):
    exit_code = EXIT_USAGE


class NotFoundError(AgentctlError):
    exit_code = EXIT_USAGE


class ConfigError(AgentctlError):
    """A configuration mistake, located in a file (and a line where one is known)."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        hint: str | None = None,
        more: tuple[ConfigError, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.source = source
        self.line = line
        self.more = more  # further mistakes found in the same load, reported together

    @property
    def all(self) -> tuple[ConfigError, ...]:
        return (self, *self.more)

    @property
    def location(self) -> str | None:
        if self.source is None:
            return None
        return f"{self.source}:{self.line}" if self.line else self.source

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.location}: {text}" if self.location else text


class SecretsFileError(ConfigError):
    """The ``[secrets] file`` cannot be used: missing, malformed, or readable by others."""


class StateError(AgentctlError):
    """A state file could not be read or written (disk full, permissions, ...)."""

    def __init__(self, message: str, *, path: Path | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


class CorruptStateError(StateError):
    """A state file exists but cannot be parsed; it is never read as 'not started'."""


class FutureStateError(StateError):
    """A state file carries a schema_version newer than this agentctl understands."""


class TransitionError(StateError):
    """A run status change that the state machine does not allow."""


class MissingKeyError(AgentctlError):
    exit_code = EXIT_USAGE


class PreflightError(AgentctlError):
    """Refused before the first model call, at $0: the gate or the merge could never pass."""

    exit_code = EXIT_USAGE


class BudgetExceeded(AgentctlError):
    """A call was refused before it was sent, because it could pass a budget."""


class GitError(AgentctlError):
    """A git operation failed; the message carries the command and what git said."""


class MergeRefusedError(GitError):
    """A merge that would not be safe was not attempted (nothing changed)."""


class ConflictMarkersError(GitError):
    """A commit was refused: files still hold ``<<<<<<<`` conflict markers."""


class ServiceError(AgentctlError):
    """A tracker or forge (Linear, GitHub) call failed; says which and how."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.service = service
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        ids = [f"HTTP {self.status}"] if self.status else []
        if self.code:
            ids.append(self.code)
        suffix = f" ({', '.join(ids)})" if ids else ""
        return f"{self.service}: {super().__str__()}{suffix}"


class ServiceUnavailableError(ServiceError):
    retryable = True


class ServiceRateLimitedError(ServiceUnavailableError):
    pass


class NotSubmittedError(ServiceUnavailableError):
    """The run is on disk (``pending``, or its resume requested) but no executor took it:
    the broker is unreachable. It is not lost: the next tick submits it again."""

    def __init__(self, message: str, *, run_id: str, hint: str | None = None) -> None:
        super().__init__(message, service="Celery broker", hint=hint)
        self.run_id = run_id


class ServiceRejectedError(ServiceError):
    pass


class ServiceAuthError(ServiceRejectedError):
    exit_code = EXIT_USAGE


class ProviderError(AgentctlError):
    """A model call failed; carries what a person needs to look it up."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.model = model
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after  # seconds the server asked us to wait (429, 503)

    def __str__(self) -> str:
        where = f"{self.model}: " if self.model else ""
        ids = []
        if self.status is not None:
            ids.append(f"HTTP {self.status}")
        if self.request_id:
            ids.append(f"request {self.request_id}")
        suffix = f" ({', '.join(ids)})" if ids else ""
        return f"{where}{super().__str__()}{suffix}"


class TransientError(ProviderError):
    retryable = True


class RateLimitedError(TransientError):
    pass


class PermanentError(ProviderError):
    pass


class AuthError(PermanentError):
    pass


class QuotaError(PermanentError):
    pass


class BadRequestError(PermanentError):
    pass
