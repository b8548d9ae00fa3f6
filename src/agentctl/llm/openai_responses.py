"""The Responses API on the official ``openai`` SDK: how Codex models are called.

Calls are stateless (``store=False``): the whole conversation is sent each turn,
and the output items of each answer — reasoning items with their encrypted
content, messages, function calls — are kept in ``provider_data`` and echoed back
verbatim, as the API asks for reasoning to carry across tool calls.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentctl.errors import TransientError
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
    ThinkingDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from agentctl.config.schema import Model


def to_input(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id,
                    "output": message.content,
                }
            )
        elif message.role == "assistant":
            kept = (message.provider_data or {}).get("responses_output")
            if kept:
                items.extend(dict(item) for item in kept)
                continue
            if message.content:
                items.append({"role": "assistant", "content": message.content})
            items.extend(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.raw_arguments or json.dumps(call.arguments or {}),
                }
                for call in message.tool_calls
            )
        else:
            items.append({"role": "user", "content": message.content})
    return items


def build_params(model: Model, request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model.name,
        "input": to_input(request.messages),
        "max_output_tokens": min(request.max_tokens, model.max_tokens),
        "store": False,
    }
    if request.system:
        params["instructions"] = request.system
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
                "strict": False,
            }
            for t in request.tools
        ]
    effort = request.reasoning_effort or model.reasoning_effort
    if effort:
        params["reasoning"] = {"effort": effort}
        params["include"] = ["reasoning.encrypted_content"]  # to echo reasoning back statelessly
    temperature = request.temperature if request.temperature is not None else model.temperature
    if temperature is not None:
        params["temperature"] = temperature
    return params


def usage_of(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    cached, written = cache_split(getattr(raw, "input_tokens_details", None))
    return Usage(
        input_tokens=(raw.input_tokens or 0) - cached - written,
        output_tokens=raw.output_tokens or 0,
        cache_write_tokens=written,
        cache_read_tokens=cached,
    )


def _dump(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = item.model_dump(exclude_none=True)
    return data


class ResponsesProvider(OpenAIProvider):
    """A configured model behind the Responses API (Codex models)."""

    def complete(
        self, request: Request, *, on_event: OnEvent | None = None, stream: bool = True
    ) -> Response:
        params = build_params(self.model, request)
        with translated(self.name, self.model):
            if not stream:
                result = self.client.responses.create(**params)
                return self._response(result, getattr(result, "_request_id", None), {}, request)
            return self._stream(params, request, on_event)

    def _stream(
        self, params: dict[str, Any], request: Request, on_event: OnEvent | None
    ) -> Response:
        deadline = Deadline(self.model.timeout)
        calls: dict[str, ToolBuffer] = {}  # item id → buffer
        final, request_id = None, None
        for request_id, event in stream_events(self.client.responses.create, params):  # noqa: B007
            deadline.check(self.name)
            kind = event.type
            if kind == "response.output_text.delta" and on_event:
                on_event(TextDelta(event.delta))
            elif kind == "response.reasoning_summary_text.delta" and on_event:
                on_event(ThinkingDelta(event.delta))
            elif kind == "response.output_item.added" and event.item.type == "function_call":
                item = event.item
                calls[item.id or item.call_id] = ToolBuffer(item.call_id, item.name)
                if on_event:
                    on_event(ToolCallDelta(len(calls) - 1, item.call_id, item.name))
            elif kind == "response.function_call_arguments.delta":
                buffer = calls.get(event.item_id)
                if buffer is not None:
                    buffer.arguments.append(event.delta)
                    if on_event:
                        on_event(
                            ToolCallDelta(list(calls).index(event.item_id), arguments=event.delta)
                        )
            elif kind in ("response.completed", "response.incomplete"):
                final = event.response
            elif kind == "response.failed":
                error = getattr(event.response, "error", None)
                message = getattr(error, "message", None) or "the response failed"
                raise TransientError(f"stream error: {message}", model=self.name, status=200)
            elif kind == "error":
                message = getattr(event, "message", None) or "error event"
                code = getattr(event, "code", None)
                raise TransientError(
                    f"stream error: {code}: {message}" if code else f"stream error: {message}",
                    model=self.name,
                    status=200,
                )
        if final is None:
            raise TransientError("the stream ended before the response completed", model=self.name)
        return self._response(final, request_id, calls, request)

    def _response(
        self, result: Any, request_id: str | None, streamed: dict[str, ToolBuffer], request: Request
    ) -> Response:
        text: list[str] = []
        thinking: list[str] = []
        calls = []
        refused = False
        for item in result.output or []:
            if item.type == "message":
                for part in item.content or []:
                    if part.type == "output_text":
                        text.append(part.text)
                    elif part.type == "refusal":
                        refused = True
                        text.append(part.refusal)
            elif item.type == "function_call":
                buffer = streamed.get(item.id or item.call_id)
                raw = item.arguments if item.arguments else (buffer.raw if buffer else "")
                calls.append(check_call(item.call_id, item.name, raw, request.tools))
            elif item.type == "reasoning":
                thinking.extend(s.text for s in (item.summary or []) if getattr(s, "text", None))
        reason = getattr(getattr(result, "incomplete_details", None), "reason", None)
        stop: StopReason
        if refused or reason == "content_filter":
            stop = "refusal"
        elif result.status == "incomplete":
            stop = "max_tokens" if reason == "max_output_tokens" else "other"
        else:
            stop = "tool_use" if calls else "end_turn"
        return Response(
            text="".join(text),
            tool_calls=tuple(calls),
            stop_reason=stop,
            usage=usage_of(result.usage),
            model=result.model or self.model.name,
            request_id=request_id,
            raw_stop_reason=reason or result.status,
            thinking="".join(thinking),
            provider_data={"responses_output": [_dump(i) for i in result.output or []]},
        )
