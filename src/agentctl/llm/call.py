"""One model call done right: concurrency slot, retries honouring retry-after, fallbacks.

The SDKs' own retries are off (``max_retries=0``) so that every attempt is seen
here: a transient failure (429, 5xx, 529, timeout, reset, stall, mid-stream error)
is retried with backoff — waiting what ``retry-after`` asks, up to ``max_wait`` —
but never after a tool call was already streamed; when a model's attempts are
spent, or its key is refused or missing, the next model of the chain is tried.
Quota/spend-cap and bad-request errors stop at once: retrying cannot help.

``reserve`` (see ``agentctl.cost.metered``) is asked before each model of the chain is
tried: it returns how to release the reservation if that model gives no answer, or
None to skip the model; it raises to stop the call.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl import keystore
from agentctl.errors import AuthError, MissingKeyError, ProviderError, TransientError
from agentctl.llm import Provider, make_provider
from agentctl.llm.slots import slot
from agentctl.llm.types import OnEvent, Request, Response, Restart, StreamEvent, ToolCallDelta

if TYPE_CHECKING:
    from agentctl.config.schema import Model

ProviderFactory = Callable[[str, "Model"], Provider]

# Where a model without a base_url is called: named in errors so a person can check it.
DEFAULT_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}
Reserve = Callable[[str], Callable[[], None] | None]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try that failed, for the journal: which model, which try, why, how long we waited."""

    model: str
    number: int
    error: str
    wait: float | None  # seconds before the next try; None when moving to the next model


@dataclass(frozen=True, slots=True)
class Outcome:
    response: Response
    model: str  # the configured name of the model that answered
    attempts: tuple[Attempt, ...]  # the failures before it, in order


def redacted(request: Request) -> Request:
    """``request`` with every known key value (and its encodings) taken out of its texts.

    ``provider_data`` (signed thinking blocks) goes back verbatim, as providers demand.
    """
    redact = keystore.redactor()
    if not redact:
        return request
    messages = []
    for message in request.messages:
        clean = redact(message.content)
        messages.append(message if clean == message.content else replace(message, content=clean))
    return replace(request, messages=tuple(messages), system=redact(request.system))


def backoff(attempt: int) -> float:
    """The SDKs' schedule: ~0.5 s, ~1 s, ~2 s ... capped at 8 s, up to 25 % jitter down."""
    return float(min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random()))


class Caller:
    """Calls a chain of configured models; one instance per process reuses connections."""

    def __init__(
        self,
        models: Mapping[str, Model],
        *,
        lock_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        factory: ProviderFactory | None = None,
        max_wait: float = 300.0,
        on_attempt: Callable[[Attempt], object] | None = None,
    ) -> None:
        self.models = models
        self.lock_dir = lock_dir
        self.sleep = sleep
        self.max_wait = max_wait
        self.on_attempt = on_attempt
        self._factory = factory or (lambda name, model: make_provider(name, model, environ))
        self._providers: dict[str, Provider] = {}

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = self._factory(name, self.models[name])
        return self._providers[name]

    def complete(
        self,
        request: Request,
        chain: Sequence[str],
        *,
        on_event: OnEvent | None = None,
        stream: bool = True,
        reserve: Reserve | None = None,
    ) -> Outcome:
        """The first answer from ``chain`` (model names, in order); raise the last failure."""
        request = redacted(request)  # the last line of defence: no known key is ever sent
        failures: list[Attempt] = []
        last: ProviderError | MissingKeyError | None = None
        why: list[str] = []  # one line per model that failed: what, and where to look
        missing: list[str] = []  # the key variables that were not set
        for name in chain:
            release = None
            if reserve is not None:
                release = reserve(name)
                if release is None:
                    self._note(Attempt(name, 0, "skipped: its budget is spent", None), failures)
                    why.append(f"{name}: skipped, its budget is spent")
                    continue
            try:
                response = self._one_model(name, request, on_event, stream, failures)
            except (TransientError, AuthError, MissingKeyError) as exc:
                if release is not None:
                    release()
                last = exc
                why.append(self._failure(name, exc))
                env = self.models[name].key_env
                if isinstance(exc, MissingKeyError) and env and env not in missing:
                    missing.append(env)
                # What failed and where, without the hint: the error raised says it once.
                self._note(Attempt(name, 0, why[-1][len(name) :].lstrip(": "), None), failures)
                if on_event and name != chain[-1]:
                    on_event(Restart(f"falling back from {name}", name))
                continue
            except BaseException:
                if release is not None:
                    release()
                raise
            return Outcome(response, name, tuple(failures))
        assert last is not None, "an empty model chain"
        raise self._chain_error(last, chain, why, missing) from last

    def _where(self, name: str) -> str:
        """The endpoint a model is called at: its ``base_url`` or its vendor's."""
        model = self.models[name]
        return model.base_url or DEFAULT_URLS.get(model.provider, model.provider)

    def _failure(self, name: str, exc: ProviderError | MissingKeyError) -> str:
        """``name: what failed`` naming the key variable or the URL a person should check."""
        env = self.models[name].key_env
        if isinstance(exc, MissingKeyError):
            return f"{name}: ${env} is not set"
        ids = [f"HTTP {exc.status}"] if exc.status is not None else []
        if exc.request_id:
            ids.append(f"request {exc.request_id}")
        suffix = f" ({', '.join(ids)})" if ids else ""
        if isinstance(exc, AuthError):
            return f"{name}: {exc.message}{suffix}: check the key in ${env}"
        return f"{name} at {self._where(name)}: {exc.message}{suffix}"

    def _chain_error(
        self,
        last: ProviderError | MissingKeyError,
        chain: Sequence[str],
        why: list[str],
        missing: list[str],
    ) -> ProviderError | MissingKeyError:
        """The last failure (its class decides retry and exit code), saying what each
        model of the chain did; one model's error only gains its URL or key variable."""
        error = copy.copy(last)
        if len(chain) == 1:
            if isinstance(error, AuthError):
                error.hint = error.hint or f"check the key in ${self.models[chain[0]].key_env}"
            elif isinstance(error, ProviderError) and error.status is None:  # never reached
                error.message = f"{self._where(chain[0])}: {last.message}"
            return error
        error.message = f"no model answered (tried {', '.join(chain)}): " + "; ".join(why)
        if isinstance(error, ProviderError):
            error.model = error.status = error.request_id = None
        error.hint = (
            f"export {', '.join(f'{env}=...' for env in missing)}; " if missing else ""
        ) + "`agentctl models test NAME` tries one model"
        return error

    def _one_model(
        self,
        name: str,
        request: Request,
        on_event: OnEvent | None,
        stream: bool,
        failures: list[Attempt],
    ) -> Response:
        model = self.models[name]
        provider = self.provider(name)
        tries = model.max_retries + 1
        for number in range(1, tries + 1):
            streamed_tool = False

            def relay(event: StreamEvent) -> None:
                nonlocal streamed_tool
                streamed_tool = streamed_tool or isinstance(event, ToolCallDelta)
                assert on_event is not None
                on_event(event)

            try:
                with slot(self.lock_dir or Path(".agentctl/locks"), name, model.max_concurrency):
                    return provider.complete(
                        request, on_event=relay if on_event else None, stream=stream
                    )
            except TransientError as exc:
                if streamed_tool or number == tries:
                    raise  # a half-streamed tool call is never replayed; or no tries left
                wait = exc.retry_after if exc.retry_after is not None else backoff(number - 1)
                if wait > self.max_wait:
                    exc.hint = f"the server asked to wait {wait:g} s (more than {self.max_wait:g})"
                    raise
                self._note(Attempt(name, number, str(exc), wait), failures)
                self.sleep(wait)
                if on_event:
                    on_event(Restart(f"retrying {name} after: {exc.message}", name))
        raise AssertionError("unreachable")

    def _note(self, attempt: Attempt, failures: list[Attempt]) -> None:
        failures.append(attempt)
        if self.on_attempt is not None:
            self.on_attempt(attempt)
