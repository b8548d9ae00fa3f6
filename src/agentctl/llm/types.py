"""Provider-neutral request and response values: what every model call is made of.

Providers translate these to and from their wire formats; the agent loop, the
ledger and the transcript only ever see these. All are frozen and JSON-round-trip
(``to_json``/``from_json``) so a transcript can resume a conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool"]
StopReason = Literal[
    "end_turn",  # the model finished its answer
    "tool_use",  # the model asked for tools
    "max_tokens",  # the output limit was reached (maybe inside a tool call)
    "stop_sequence",
    "refusal",  # the model or a content filter declined
    "context_window",  # the prompt did not fit
    "other",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call, split the way they are billed.

    ``input_tokens`` are the uncached input tokens (billed at the input price);
    ``cache_write_tokens`` and ``cache_read_tokens`` are billed at the cache prices.
    Providers normalise to this: Anthropic reports cache tokens beside
    ``input_tokens``; OpenAI's ``prompt_tokens`` include ``cached_tokens``, which
    the provider subtracts.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """All input, cached or not: what decides a long-context price band."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
        )

    def to_json(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        return cls(
            int(data.get("input_tokens", 0)),
            int(data.get("output_tokens", 0)),
            int(data.get("cache_write_tokens", 0)),
            int(data.get("cache_read_tokens", 0)),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: name, description and a JSON Schema for arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call as the model made it.

    ``arguments`` is the parsed object when ``error`` is None. A malformed call (bad
    JSON, an unknown tool, arguments failing the schema) keeps ``raw_arguments``
    and says what is wrong in ``error``: the agent loop hands that back to the
    model as a tool error, it never guesses.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] | None
    raw_arguments: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arguments": dict(self.arguments) if self.arguments is not None else None,
            "raw_arguments": self.raw_arguments,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(
            str(data["id"]),
            str(data["name"]),
            data.get("arguments"),
            str(data.get("raw_arguments", "")),
            data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation message.

    ``tool`` messages carry a tool result for ``tool_call_id``. ``provider_data``
    keeps what a provider must get back verbatim on the next turn (Anthropic
    thinking blocks with signatures, Responses API reasoning items); it is ignored
    by other providers.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False
    provider_data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.is_error:
            out["is_error"] = True
        if self.provider_data:
            out["provider_data"] = dict(self.provider_data)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            data["role"],
            str(data.get("content", "")),
            tuple(ToolCall.from_json(c) for c in data.get("tool_calls", ())),
            data.get("tool_call_id"),
            bool(data.get("is_error", False)),
            data.get("provider_data"),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One model call, independent of the vendor."""

    messages: tuple[Message, ...]
    system: str = ""
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    thinking_budget: int | None = None
    reasoning_effort: str | None = None
    cache: bool = True  # prompt-caching breakpoints where the API has them
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    """A normalised model answer."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: StopReason
    usage: Usage
    model: str  # the model id the API says answered
    request_id: str | None = None
    raw_stop_reason: str | None = None
    thinking: str = ""
    provider_data: Mapping[str, Any] | None = None

    @property
    def truncated_tool_call(self) -> bool:
        """``max_tokens`` hit while a tool call was being written: never execute it."""
        return self.stop_reason == "max_tokens" and bool(self.tool_calls)

    @property
    def empty(self) -> bool:
        return not self.text.strip() and not self.tool_calls

    def message(self) -> Message:
        """The assistant message to append to the conversation."""
        return Message("assistant", self.text, self.tool_calls, provider_data=self.provider_data)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: ``id``/``name`` arrive first, then argument fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Restart:
    """A retry or a fallback model starts over: discard the partial output shown so far."""

    reason: str
    model: str


StreamEvent = TextDelta | ThinkingDelta | ToolCallDelta | Restart
OnEvent = Callable[[StreamEvent], None]
