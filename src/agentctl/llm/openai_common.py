"""What the Chat Completions and Responses providers share: the client and its errors.

Compatible servers (vLLM, Ollama, LM Studio, OpenRouter) send error bodies with or
without the ``{"error": ...}`` wrapper and integer codes; the SDK normalises most of
that into ``status_code``/``code``/``type``, and ``translate`` maps the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from agentctl.errors import ProviderError, TransientError
from agentctl.llm.common import GARBLED, classify, garbled

if TYPE_CHECKING:
    from agentctl.config.schema import Model


def make_client(model: Model, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=api_key,
        base_url=model.base_url,
        max_retries=0,  # agentctl.llm.call retries, honouring retry-after, then falls back
        timeout=openai.Timeout(model.timeout, connect=10.0, read=model.idle_timeout),
    )


class OpenAIProvider:
    """What the Chat Completions and Responses providers share: name, model, client."""

    def __init__(self, name: str, model: Model, api_key: str) -> None:
        self.name = name
        self.model = model
        self.client = make_client(model, api_key)


def _body_field(body: object, name: str) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get(name) is not None:
            return str(inner[name])
    return None


@contextmanager
def translated(name: str, model: Model) -> Iterator[None]:
    """Turn every ``openai`` exception raised inside into an agentctl ``ProviderError``."""
    try:
        yield
    except openai.APIStatusError as exc:
        kind = exc.code or exc.type or _body_field(exc.body, "type")
        message = _body_field(exc.body, "message") or exc.message
        raise classify(
            name,
            exc.status_code,
            message,
            kind=str(kind) if kind is not None else None,
            request_id=exc.request_id,
            headers=exc.response.headers,
        ) from exc
    except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
        raise TransientError(
            f"no data for {model.idle_timeout:g} s (stalled or slow)", model=name
        ) from exc
    except (openai.APIConnectionError, httpx2.TransportError) as exc:
        raise TransientError(f"connection failed: {exc}", model=name) from exc
    except openai.APIError as exc:  # an error object inside an HTTP 200 stream
        raise TransientError(f"stream error: {exc.message}", model=name, status=200) from exc
    except openai.OpenAIError as exc:
        raise ProviderError(str(exc), model=name) from exc
    except GARBLED as exc:
        raise garbled(name, exc) from exc


def stream_events(
    create: Callable[..., Any], params: dict[str, Any]
) -> Iterator[tuple[str | None, Any]]:
    """Open a stream; yield (request id, event) pairs and close it however we leave."""
    stream = create(**params, stream=True)
    request_id = stream.response.headers.get("x-request-id")
    try:
        for event in stream:
            yield request_id, event
    finally:
        stream.close()


def cache_split(details: Any) -> tuple[int, int]:
    """(cached, cache-written) prompt tokens; OpenAI counts both inside the prompt tokens."""
    if details is None:
        return 0, 0
    return (getattr(details, "cached_tokens", 0) or 0), (
        getattr(details, "cache_write_tokens", 0) or 0
    )
