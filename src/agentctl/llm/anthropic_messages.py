"""Claude through the official ``anthropic`` SDK: Messages API, streaming, tools, caching.

Prompt caching: ``cache_control`` breakpoints go on the tool list, the system prompt
and the moving end of the conversation (the last message and the user message
before it), so each turn of an agent loop reads the previous turn's prefix from
the cache and writes only what is new. Thinking blocks (with signatures) are kept
verbatim in ``provider_data`` and sent back, as the API requires in tool loops.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2

from agentctl.errors import ProviderError, TransientError
from agentctl.llm.common import GARBLED, Deadline, ToolBuffer, classify, garbled
from agentctl.llm.toolcheck import check_call
from agentctl.llm.types import (
    Message,
    OnEvent,
    Request,
    Response,
    StopReason,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from agentctl.config.schema import Model

_CACHE = {"type": "ephemeral"}
_LONGEST_UNSTREAMED = 16_000
_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "model_context_window_exceeded": "context_window",
}


def _blocks_of(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
                **({"is_error": True} if message.is_error else {}),
            }
        ]
    if message.role == "assistant":
        kept = (message.provider_data or {}).get("anthropic_content")
        if kept:
            return [dict(block) for block in kept]
        blocks: list[dict[str, Any]] = []
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        for call in message.tool_calls:
            arguments = dict(call.arguments) if call.arguments is not None else {}
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}
            )
        return blocks
    return [{"type": "text", "text": message.content}] if message.content else []


def to_messages(messages: tuple[Message, ...], cache: bool) -> list[dict[str, Any]]:
    """Anthropic messages: tool results ride in user turns; same-role turns are merged."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks_of(message)
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if cache and out:
        marked = 0
        for turn in reversed(out):  # the last message, and the user turn before it
            if marked == 0 or (turn["role"] == "user" and marked == 1):
                turn["content"][-1] = {**turn["content"][-1], "cache_control": _CACHE}
                marked += 1
            if marked == 2:
                break
    return out


def build_params(model: Model, request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model.name,
        "max_tokens": min(request.max_tokens, model.max_tokens),
        "messages": to_messages(request.messages, request.cache),
    }
    if request.system:
        system: dict[str, Any] = {"type": "text", "text": request.system}
        if request.cache:
            system["cache_control"] = _CACHE
        params["system"] = [system]
    if request.tools:
        tools = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        if request.cache:
            tools[-1]["cache_control"] = _CACHE
        params["tools"] = tools
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    budget = request.thinking_budget or model.thinking_budget
    if budget:
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    temperature = request.temperature if request.temperature is not None else model.temperature
    if temperature is not None and not budget:
        params["extra_body"] = {"temperature": temperature}  # SDK 2.x dropped the argument
    return params


def _usage(raw: Any) -> Usage:
    return Usage(
        input_tokens=getattr(raw, "input_tokens", 0) or 0,
        output_tokens=getattr(raw, "output_tokens", 0) or 0,
        cache_write_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
        cache_read_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
    )


class AnthropicProvider:
    """A configured Claude model."""

    def __init__(self, name: str, model: Model, api_key: str) -> None:
        self.name = name
        self.model = model
        self.client = anthropic.Anthropic(
            api_key=api_key,
            base_url=model.base_url,
            max_retries=0,  # agentctl.llm.call retries, honouring retry-after, then falls back
            timeout=anthropic.Timeout(model.timeout, connect=10.0, read=model.idle_timeout),
        )

    def complete(
        self, request: Request, *, on_event: OnEvent | None = None, stream: bool = True
    ) -> Response:
        params = build_params(self.model, request)
        deadline = Deadline(self.model.timeout)
        try:
            # The SDK refuses non-streaming calls that may run past its 10-minute limit
            # (max_tokens above ~21,333); the streamed answer is the same answer.
            if not stream and params["max_tokens"] <= _LONGEST_UNSTREAMED:
                return self._finish(self.client.messages.create(**params), request)
            return self._stream(params, request, on_event, deadline)
        except anthropic.APIStatusError as exc:
            raise classify(
                self.name,
                exc.status_code,
                exc.api_message or str(exc),
                kind=exc.type,
                request_id=exc.request_id,
                headers=exc.response.headers,
            ) from exc
        except (anthropic.APITimeoutError, httpx2.TimeoutException) as exc:
            raise TransientError(
                f"no data for {self.model.idle_timeout:g} s (stalled or slow)", model=self.name
            ) from exc
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            raise TransientError(f"connection failed: {exc}", model=self.name) from exc
        except anthropic.AnthropicError as exc:
            raise ProviderError(str(exc), model=self.name) from exc
        except GARBLED as exc:
            raise garbled(self.name, exc) from exc

    def _finish(self, message: Any, request: Request) -> Response:
        blocks = [block.model_dump(exclude_none=True) for block in message.content]
        return self._response(
            blocks,
            {i: json.dumps(b.get("input", {})) for i, b in enumerate(blocks)},
            message.stop_reason,
            _usage(message.usage),
            message.model,
            getattr(message, "_request_id", None),
            request,
        )

    def _stream(
        self, params: dict[str, Any], request: Request, on_event: OnEvent | None, deadline: Deadline
    ) -> Response:
        blocks: dict[int, dict[str, Any]] = {}
        tools: dict[int, ToolBuffer] = {}
        usage = Usage()
        model_id, stop = self.model.name, None
        with self.client.messages.create(**params, stream=True) as events:
            request_id = events.response.headers.get("request-id")
            for event in events:
                deadline.check(self.name)
                kind = event.type
                if kind == "message_start":
                    model_id = event.message.model
                    usage = _usage(event.message.usage)
                elif kind == "content_block_start":
                    block = event.content_block.model_dump(exclude_none=True)
                    blocks[event.index] = block
                    if block["type"] == "tool_use":
                        tools[event.index] = ToolBuffer(block["id"], block["name"])
                        if on_event:
                            on_event(ToolCallDelta(len(tools) - 1, block["id"], block["name"]))
                elif kind == "content_block_delta":
                    self._delta(event, blocks, tools, on_event)
                elif kind == "message_delta":
                    stop = event.delta.stop_reason or stop
                    usage = _merge_usage(usage, event.usage)
        raw_args = {index: buffer.raw for index, buffer in tools.items()}
        for index, buffer in tools.items():
            try:
                blocks[index]["input"] = json.loads(buffer.raw or "{}")
            except json.JSONDecodeError:
                blocks[index]["input"] = {}
        ordered = [blocks[i] for i in sorted(blocks)]
        positions = sorted(blocks)
        return self._response(
            ordered,
            {positions.index(i): raw for i, raw in raw_args.items()},
            stop,
            usage,
            model_id,
            request_id,
            request,
        )

    @staticmethod
    def _delta(
        event: Any,
        blocks: dict[int, dict[str, Any]],
        tools: dict[int, ToolBuffer],
        on_event: OnEvent | None,
    ) -> None:
        delta = event.delta
        block = blocks.setdefault(event.index, {"type": "text", "text": ""})
        if delta.type == "text_delta":
            block["text"] = block.get("text", "") + delta.text
            if on_event:
                on_event(TextDelta(delta.text))
        elif delta.type == "input_json_delta":
            buffer = tools.get(event.index)
            if buffer is None:  # a server tool's input (web_search): the API runs it, not us
                return
            buffer.arguments.append(delta.partial_json)
            if on_event:
                on_event(
                    ToolCallDelta(list(tools).index(event.index), arguments=delta.partial_json)
                )
        elif delta.type == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.thinking
            if on_event:
                on_event(ThinkingDelta(delta.thinking))
        elif delta.type == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.signature

    def _response(
        self,
        blocks: list[dict[str, Any]],
        raw_arguments: dict[int, str],
        stop: str | None,
        usage: Usage,
        model_id: str,
        request_id: str | None,
        request: Request,
    ) -> Response:
        text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
        thinking = "".join(b.get("thinking", "") for b in blocks if b["type"] == "thinking")
        calls = tuple(
            check_call(b["id"], b["name"], raw_arguments.get(i) or "{}", request.tools)
            for i, b in enumerate(blocks)
            if b["type"] == "tool_use"
        )
        keep = any(b["type"] in ("thinking", "redacted_thinking") for b in blocks)
        return Response(
            text=text,
            tool_calls=calls,
            stop_reason=_STOP.get(stop or "", "other"),
            usage=usage,
            model=model_id,
            request_id=request_id,
            raw_stop_reason=stop,
            thinking=thinking,
            provider_data={"anthropic_content": blocks} if keep else None,
        )


def _merge_usage(usage: Usage, delta: Any) -> Usage:
    """``message_delta.usage`` is cumulative; a field overwrites only when present."""

    def pick(name: str, current: int) -> int:
        value = getattr(delta, name, None)
        return current if value is None else int(value)

    return Usage(
        input_tokens=pick("input_tokens", usage.input_tokens),
        output_tokens=pick("output_tokens", usage.output_tokens),
        cache_write_tokens=pick("cache_creation_input_tokens", usage.cache_write_tokens),
        cache_read_tokens=pick("cache_read_input_tokens", usage.cache_read_tokens),
    )
