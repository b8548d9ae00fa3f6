"""One GraphQL endpoint (Linear, GitHub) through gql: pacing, bounded retries, one error tree.

The rules come from RELIABILITY.md and from what other orchestrators got wrong (a
permanent GraphQL error retried for 13 hours):

- Every failure becomes a ``ServiceError``; only ``ServiceUnavailableError`` (rate
  limited, 5xx, unreachable) is retried, at most ``max_retries`` times, and a
  mutation only when the service cannot have applied it (rate limited, no connection).
- The rate-limit headers of the last reply are read; as the remaining requests fall
  below a tenth of the limit, requests are spread over what is left of the window
  instead of running into the wall. A wait longer than ``max_wait`` is not slept:
  it is reported, so a tick ends instead of hanging.
- Tokens live in the Authorization header of this process only; errors never carry them.

gql and httpx2 are imported when the first request is made: ``agentctl --help`` must
not pay for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentctl import keystore
from agentctl.errors import (
    MissingKeyError,
    ServiceAuthError,
    ServiceError,
    ServiceRateLimitedError,
    ServiceRejectedError,
    ServiceUnavailableError,
)

Classifier = Callable[[list[dict[str, Any]], int | None, str], ServiceError]


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """Where a service puts its request budget, and the unit of its reset time."""

    limit: str
    remaining: str
    reset: str
    reset_unit: float  # seconds per unit of ``reset`` (Linear: ms → 0.001; GitHub: s → 1)


@dataclass
class RateState:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # epoch seconds
    retry_after: float | None = None


class GraphQLService:
    """Send documents to one endpoint; ``execute`` returns the ``data`` dict or raises."""

    def __init__(
        self,
        *,
        service: str,
        url: str,
        authorization: str,
        classify: Classifier,
        rate_headers: RateHeaders,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_wait: float = 60.0,
        low_water: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.url = url
        self._authorization = authorization
        self._classify = classify
        self._headers = rate_headers
        self._timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.low_water = low_water
        self._sleep = sleep
        self._clock = clock
        self.rate = RateState()
        self.requests = 0  # sent by this process, for tests and `doctor`
        self._session: Any = None
        self._transport: Any = None
        self._client: Any = None
        self._last_status: int | None = None

    # -- requests ---------------------------------------------------------------------

    def execute(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        mutation = document.lstrip().startswith("mutation")
        attempt = 0
        while True:
            self._pace()
            try:
                return self._send(document, variables)
            except ServiceUnavailableError as exc:
                safe = isinstance(exc, ServiceRateLimitedError) or exc.code == "unreachable"
                if attempt >= self.max_retries or (mutation and not safe):
                    raise
                wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
                if wait > self.max_wait:
                    raise
                attempt += 1
                self._sleep(wait)

    def close(self) -> None:
        if self._session is not None:
            from contextlib import suppress

            with suppress(Exception):
                self._client.close_sync()
            self._session = None

    def _connect(self) -> Any:
        if self._session is None:
            from gql import Client
            from gql.transport.httpx import HTTPXTransport

            # Plain http (a local endpoint) has no TLS: skip loading the CA bundle (~0.1 s).
            tls: dict[str, Any] = {} if self.url.startswith("https:") else {"verify": False}
            self._transport = HTTPXTransport(
                url=self.url,
                headers={"Authorization": self._authorization},
                timeout=self._timeout,
                event_hooks={"response": [self._saw_status]},
                **tls,
            )
            self._client = Client(transport=self._transport)
            self._session = self._client.connect_sync()
        return self._session

    def _send(self, document: str, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        from gql import GraphQLRequest
        from gql.transport.exceptions import (
            TransportConnectionFailed,
            TransportProtocolError,
            TransportQueryError,
            TransportServerError,
        )

        session = self._connect()
        self._transport.response_headers = None
        self._last_status = None
        request = GraphQLRequest(document, variable_values=dict(variables or {}))
        self.requests += 1
        try:
            data = session.execute(request)
        except TransportQueryError as exc:
            self._read_headers()
            errors = [e for e in (exc.errors or []) if isinstance(e, dict)] or [
                {"message": str(exc)}
            ]
            raise self._with_wait(self._classify(errors, self._status(), self.service)) from None
        except TransportServerError as exc:
            self._read_headers()
            raise self._with_wait(self._http_error(exc.code, str(exc))) from None
        except TransportConnectionFailed as exc:
            self.close()
            raise ServiceUnavailableError(
                f"cannot reach {self.url}: {_cause(exc)}",
                service=self.service,
                code="unreachable",
                hint="check the url in agentctl.toml and the network",
            ) from None
        except TransportProtocolError as exc:
            raise ServiceRejectedError(
                f"{self.url} did not answer as a GraphQL API: {str(exc)[:200]}",
                service=self.service,
                hint="check the url in agentctl.toml",
            ) from None
        self._read_headers()
        return dict(data)

    # -- rate limits --------------------------------------------------------------------

    def _pace(self) -> None:
        """Spread what is left of the window once under the low-water mark."""
        rate = self.rate
        if rate.remaining is None or rate.reset_at is None or not rate.limit:
            return
        if rate.remaining > rate.limit * self.low_water:
            return
        left = max(0.0, rate.reset_at - self._clock())
        wait = left / max(rate.remaining, 1) if rate.remaining > 0 else left
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise ServiceRateLimitedError(
                f"{rate.remaining} of {rate.limit} requests left until the window resets "
                f"in {left:.0f} s; not waiting that long",
                service=self.service,
                code="RATE_LIMIT_LOW",
                retry_after=left,
                hint="the next tick will carry on",
            )
        self._sleep(wait)

    def _read_headers(self) -> None:
        headers = self._transport.response_headers if self._transport is not None else None
        if not headers:
            return
        names = self._headers
        limit, remaining, reset = (
            _number(headers.get(n)) for n in (names.limit, names.remaining, names.reset)
        )
        if limit is not None:
            self.rate.limit = int(limit)
        if remaining is not None:
            self.rate.remaining = int(remaining)
        if reset is not None:
            self.rate.reset_at = reset * names.reset_unit
        self.rate.retry_after = _number(headers.get("retry-after"))

    def _saw_status(self, response: Any) -> None:
        self._last_status = int(response.status_code)

    def _status(self) -> int | None:
        return self._last_status

    def _with_wait(self, error: ServiceError) -> ServiceError:
        """A rate-limited error waits what the server said, else until the window resets."""
        if isinstance(error, ServiceRateLimitedError) and error.retry_after is None:
            if self.rate.retry_after is not None:
                error.retry_after = self.rate.retry_after
            elif self.rate.reset_at is not None:
                error.retry_after = max(0.0, self.rate.reset_at - self._clock())
        return error

    def _http_error(self, status: int | None, text: str) -> ServiceError:
        """A reply that is not GraphQL: the HTTP status says what happened."""
        detail = text.split("\n", 1)[0][:200]
        if status == 401:
            return ServiceAuthError(
                "the token was refused (bad credentials)",
                service=self.service,
                status=status,
                hint="check the token's environment variable",
            )
        secondary = status == 403 and (
            self.rate.retry_after is not None or "rate limit" in text.lower()
        )
        if status == 429 or secondary:
            return ServiceRateLimitedError(
                "rate limited",
                service=self.service,
                status=status,
                code="RATE_LIMITED",
                # GitHub's secondary limit may name no wait ("a few minutes"): more than
                # is worth sleeping here, so the next tick tries again
                retry_after=None if self.rate.retry_after is not None else 120.0,
            )
        if status == 403:
            return ServiceAuthError(
                f"forbidden: {detail}", service=self.service, status=status, hint=None
            )
        if status is not None and status >= 500:
            return ServiceUnavailableError(
                f"server error: {detail}", service=self.service, status=status
            )
        return ServiceRejectedError(detail, service=self.service, status=status)


def service_from_env(
    environ: Mapping[str, str] | None,
    env_name: str,
    *,
    service: str,
    url: str,
    authorization: Callable[[str], str],
    classify: Classifier,
    rate_headers: RateHeaders,
    hint: str,
) -> tuple[GraphQLService, str]:
    """The service authenticated by the token in ``env_name`` (from the key store, or
    ``environ`` if given), and the token itself."""
    if environ is None:
        token = (keystore.get(env_name) or "").strip()
    else:
        token = environ.get(env_name, "").strip()
    if not token:
        raise MissingKeyError(f"{env_name} is not set: {service} needs a token", hint=hint)
    client = GraphQLService(
        service=service,
        url=url,
        authorization=authorization(token),
        classify=classify,
        rate_headers=rate_headers,
    )
    return client, token


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return str(cause) or type(cause).__name__
