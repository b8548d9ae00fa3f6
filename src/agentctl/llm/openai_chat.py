"""Chat Completions on the official ``openai`` SDK: OpenAI and every compatible server.

Usage is asked for with ``stream_options.include_usage`` (compatible servers send
it only then); ``prompt_tokens`` include ``cached_tokens``, which are split out so
they are billed at the cache-read price. Tool-call fragments are merged by index.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentctl.llm.common import Deadline, ToolBuffer
from agentctl.llm.openai_common import OpenAIProvider, cache_split, stream_events, translated
from agentctl.llm.toolcheck import check_call
from agentctl.llm.types import (
    Message,
    OnEvent,
    Request,
    Response,
    StopReason,
    TextDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from agentctl.config.schema import Model

_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def to_messages(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.content or None}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": call.raw_arguments or json.dumps(call.arguments or {}),
                        },
                    }
                    for call in message.tool_calls
                ]
            out.append(entry)
        else:
            out.append({"role": "user", "content": message.content})
    return out


def build_params(model: Model, request: Request) -> dict[str, Any]:
    limit = min(request.max_tokens, model.max_tokens)
    params: dict[str, Any] = {
        "model": model.name,
        "messages": to_messages(request.system, request.messages),
        # OpenAI's reasoning models take only max_completion_tokens; compatible
        # servers (vLLM, Ollama) have long known max_tokens.
        ("max_tokens" if model.base_url else "max_completion_tokens"): limit,
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    if request.stop:
        params["stop"] = list(request.stop)
    temperature = request.temperature if request.temperature is not None else model.temperature
    if temperature is not None:
        params["temperature"] = temperature
    effort = request.reasoning_effort or model.reasoning_effort
    if effort:
        params["reasoning_effort"] = effort
    return params


def usage_of(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    prompt = raw.prompt_tokens or 0
    cached, written = cache_split(getattr(raw, "prompt_tokens_details", None))
    return Usage(
        input_tokens=prompt - cached - written,
        output_tokens=raw.completion_tokens or 0,
        cache_write_tokens=written,
        cache_read_tokens=cached,
    )


class ChatProvider(OpenAIProvider):
    """A configured model behind a Chat Completions endpoint."""

    def complete(
        self, request: Request, *, on_event: OnEvent | None = None, stream: bool = True
    ) -> Response:
        params = build_params(self.model, request)
        with translated(self.name, self.model):
            if not stream:
                completion = self.client.chat.completions.create(**params)
                choice = completion.choices[0]
                calls = choice.message.tool_calls or []
                return self._response(
                    choice.message.content or "",
                    [ToolBuffer(c.id, c.function.name, [c.function.arguments]) for c in calls],
                    choice.finish_reason,
                    bool(getattr(choice.message, "refusal", None)),
                    usage_of(completion.usage),
                    completion.model,
                    getattr(completion, "_request_id", None),
                    request,
                )
            return self._stream(params, request, on_event)

    def _stream(
        self, params: dict[str, Any], request: Request, on_event: OnEvent | None
    ) -> Response:
        deadline = Deadline(self.model.timeout)
        params["stream_options"] = {"include_usage": True}
        text: list[str] = []
        tools: dict[int, ToolBuffer] = {}
        finish, refused, usage, model_id, request_id = None, False, Usage(), self.model.name, None
        for request_id, chunk in stream_events(self.client.chat.completions.create, params):  # noqa: B007
            deadline.check(self.name)
            model_id = chunk.model or model_id
            if chunk.usage is not None:
                usage = usage_of(chunk.usage)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    if on_event:
                        on_event(TextDelta(delta.content))
                if getattr(delta, "refusal", None):
                    refused = True
                    text.append(delta.refusal)
                for part in delta.tool_calls or []:
                    buffer = tools.setdefault(part.index, ToolBuffer())
                    function = part.function
                    buffer.id = part.id or buffer.id
                    buffer.name = (function.name if function else None) or buffer.name
                    fragment = (function.arguments if function else None) or ""
                    buffer.arguments.append(fragment)
                    if on_event:
                        on_event(ToolCallDelta(part.index, part.id, buffer.name, fragment))
                finish = choice.finish_reason or finish
        ordered = [tools[i] for i in sorted(tools)]
        return self._response(
            "".join(text), ordered, finish, refused, usage, model_id, request_id, request
        )

    def _response(
        self,
        text: str,
        tools: list[ToolBuffer],
        finish: str | None,
        refused: bool,
        usage: Usage,
        model_id: str,
        request_id: str | None,
        request: Request,
    ) -> Response:
        calls = tuple(
            check_call(t.id or f"call_{i}", t.name, t.raw, request.tools)
            for i, t in enumerate(tools)
        )
        # Some servers (e.g. Kimi K2 via OpenRouter) end a tool-call turn without a
        # finish_reason: the calls themselves say what the turn was.
        fallback: StopReason = "tool_use" if calls else "other"
        stop = "refusal" if refused else _STOP.get(finish or "", fallback)
        return Response(
            text=text,
            tool_calls=calls,
            stop_reason=stop,
            usage=usage,
            model=model_id,
            request_id=request_id,
            raw_stop_reason=finish,
        )
