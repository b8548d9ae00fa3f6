"""Every recorded exchange of every cassette, replayed through the real providers.

The cassettes (``../shared/conformance/cassettes``) hold what Anthropic and OpenAI
really sent. For each interaction we rebuild a ``Request`` from the recorded request
body, call the provider against a ``ReplayServer`` and compare its ``Response`` with
values computed here, independently, from the recorded response bytes. Request
bodies are not compared: conformance here is about parsing what the service sent.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentctl import errors
from agentctl.config.schema import Model, Price
from agentctl.llm import Provider, make_provider
from agentctl.llm.types import (
    Message,
    Request,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from agentctl.testing.replay import Recorded, ReplayServer

CASSETTES = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "cassettes"

# Recorded path → (provider, api) of the model that speaks it.
APIS: dict[str, tuple[str, str]] = {
    "/v1/messages": ("anthropic", "messages"),
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/responses": ("openai", "responses"),
}

# Cassettes that use what agentctl deliberately does not support: strict xfail, with why.
UNSUPPORTED: dict[str, str] = {}


def _cases() -> list[Any]:
    names = sorted(
        f"{path.parent.name}/{path.name}"
        for api in ("anthropic", "openai")
        for path in (CASSETTES / api).glob("*.yaml")
    )
    if not names:  # let the conformance_dir fixture skip (or fail in CI) with a reason
        return [pytest.param("missing", id="conformance-data-missing")]
    return [
        pytest.param(
            name,
            id=name.removesuffix(".yaml"),
            marks=[pytest.mark.xfail(strict=True, reason=UNSUPPORTED[name])]
            if name in UNSUPPORTED
            else [],
        )
        for name in names
    ]


# -- requests: the recorded body, as far as our types can say it ------------------------


TEXT_PARTS = ("text", "input_text", "output_text")


def _text_of(content: Any) -> str:
    """A string content as is; a list of parts → its text parts joined (images dropped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") in TEXT_PARTS)


def _call(call_id: str, name: str, arguments: Any) -> ToolCall:
    if isinstance(arguments, str):
        return ToolCall(call_id, name, json.loads(arguments or "{}"), arguments)
    return ToolCall(call_id, name, arguments, json.dumps(arguments))


def _anthropic_messages(raw: list[dict[str, Any]]) -> list[Message]:
    messages: list[Message] = []
    for entry in raw:
        content = entry["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if entry["role"] == "assistant":
            calls = tuple(
                _call(b["id"], b["name"], b.get("input", {}))
                for b in blocks
                if b["type"] == "tool_use"
            )
            thinking = any(b["type"] in ("thinking", "redacted_thinking") for b in blocks)
            messages.append(
                Message(
                    "assistant",
                    _text_of(blocks),
                    calls,
                    provider_data={"anthropic_content": blocks} if thinking else None,
                )
            )
            continue
        for block in blocks:
            if block["type"] == "tool_result":
                messages.append(
                    Message(
                        "tool",
                        _text_of(block.get("content")),
                        tool_call_id=block["tool_use_id"],
                        is_error=bool(block.get("is_error")),
                    )
                )
        if any(b["type"] != "tool_result" for b in blocks):
            messages.append(Message("user", _text_of(blocks)))
    if messages and messages[-1].role == "assistant":
        messages.pop()  # a prefill: our types cannot say "continue this answer"
    return messages


def _chat_messages(raw: list[dict[str, Any]]) -> tuple[str, list[Message]]:
    system: list[str] = []
    messages: list[Message] = []
    for entry in raw:
        role = entry["role"]
        if role in ("system", "developer"):
            system.append(_text_of(entry.get("content")))
        elif role == "assistant":
            calls = tuple(
                _call(c["id"], c["function"]["name"], c["function"].get("arguments", ""))
                for c in entry.get("tool_calls") or []
            )
            messages.append(Message("assistant", _text_of(entry.get("content")), calls))
        elif role == "tool":
            messages.append(
                Message("tool", _text_of(entry.get("content")), tool_call_id=entry["tool_call_id"])
            )
        else:
            messages.append(Message("user", _text_of(entry.get("content"))))
    return "\n".join(system), messages


def _responses_input(raw: Any) -> tuple[str, list[Message]]:
    if isinstance(raw, str):
        return "", [Message("user", raw)]
    system: list[str] = []
    messages: list[Message] = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "function_call":
            call = _call(item["call_id"], item["name"], item.get("arguments", ""))
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":  # calls of one turn stay together
                messages[-1] = Message("assistant", last.content, (*last.tool_calls, call))
            else:
                messages.append(Message("assistant", "", (call,)))
        elif kind == "function_call_output":
            messages.append(Message("tool", str(item["output"]), tool_call_id=item["call_id"]))
        elif kind == "message":
            role, text = item.get("role", "user"), _text_of(item.get("content"))
            if role in ("system", "developer"):
                system.append(text)
            else:
                messages.append(Message("assistant" if role == "assistant" else "user", text))
        # reasoning items and the like: echoed back by the provider itself, not expressible
    return "\n".join(system), messages


def build_request(api: str, body: dict[str, Any]) -> Request:
    """A ``Request`` saying what the recorded body said, as far as our types can."""
    tools: list[ToolSpec] = []
    if api == "messages":
        system = body.get("system") or ""
        messages = _anthropic_messages(body.get("messages", []))
        for tool in body.get("tools", []):
            if "input_schema" in tool:  # server tools (web_search, ...) have none
                tools.append(
                    ToolSpec(tool["name"], tool.get("description", ""), tool["input_schema"])
                )
        thinking = body.get("thinking") or {}
        return Request(
            tuple(messages),
            system=_text_of(system),
            tools=tuple(tools),
            max_tokens=body.get("max_tokens", 4096),
            stop=tuple(body.get("stop_sequences", ())),
            temperature=body.get("temperature"),
            thinking_budget=thinking.get("budget_tokens")
            if thinking.get("type") == "enabled"
            else None,
        )
    if api == "chat":
        system, messages = _chat_messages(body.get("messages", []))
        for tool in body.get("tools", []):
            function = tool["function"]
            tools.append(
                ToolSpec(
                    function["name"],
                    function.get("description", ""),
                    function.get("parameters", {}),
                )
            )
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
    else:
        system, messages = _responses_input(body.get("input", []))
        system = "\n".join(filter(None, [body.get("instructions") or "", system]))
        for tool in body.get("tools", []):
            if tool.get("type") == "function":
                tools.append(
                    ToolSpec(tool["name"], tool.get("description", ""), tool.get("parameters", {}))
                )
        limit = body.get("max_output_tokens") or 4096
    stop = body.get("stop") or ()
    return Request(
        tuple(messages),
        system=system,
        tools=tuple(tools),
        max_tokens=limit,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
        temperature=body.get("temperature"),
        reasoning_effort=(body.get("reasoning") or {}).get("effort")
        or body.get("reasoning_effort"),
    )


# -- expected values: our own reading of the recorded response ---------------------------


@dataclass
class Expected:
    model: str = ""
    text: str = ""
    thinking: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # id, name, arguments
    usage: Usage = field(default_factory=Usage)
    stop: StopReason = "other"
    error: type[errors.ProviderError] | None = None  # a failure the provider must raise


ANTHROPIC_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "model_context_window_exceeded": "context_window",
}
CHAT_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def sse_events(text: str) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each server-sent event; comments and data-less events dropped."""
    for chunk in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in chunk.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            yield name, "\n".join(data)


def expected_http_error(status: int, body: bytes) -> type[errors.ProviderError]:
    """The agentctl error an HTTP failure must become (see the tree in agentctl.errors)."""
    text = body.decode(errors="replace").lower()
    if status == 402 or (
        status in (403, 429) and ("insufficient_quota" in text or "billing" in text)
    ):
        return errors.QuotaError
    if status in (401, 403):
        return errors.AuthError
    if status == 429:
        return errors.RateLimitedError
    if status in (400, 404, 413, 422):
        return errors.BadRequestError
    return errors.TransientError


def expect_anthropic(body: str) -> Expected:
    out = Expected()
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    stop = None
    for _, data in sse_events(body):
        event = json.loads(data)
        kind = event["type"]
        if kind == "message_start":
            out.model = event["message"]["model"]
            usage = dict(event["message"].get("usage") or {})
        elif kind == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "json": []}
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif delta["type"] == "input_json_delta":
                block["json"].append(delta["partial_json"])
        elif kind == "message_delta":
            stop = event["delta"].get("stop_reason") or stop
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        elif kind == "error":
            out.error = errors.TransientError
    ordered = [blocks[i] for i in sorted(blocks)]
    out.text = "".join(b.get("text", "") for b in ordered if b["type"] == "text")
    out.thinking = "".join(b.get("thinking", "") for b in ordered if b["type"] == "thinking")
    out.calls = [
        (b["id"], b["name"], json.loads("".join(b["json"]) or "{}"))
        for b in ordered
        if b["type"] == "tool_use"
    ]
    out.usage = Usage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        cache_write_tokens=usage.get("cache_creation_input_tokens") or 0,
        cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
    )
    out.stop = ANTHROPIC_STOP.get(stop or "", "other")
    return out


def _openai_usage(raw: dict[str, Any] | None, prompt: str, completion: str) -> Usage:
    if not raw:
        return Usage()
    details = raw.get(f"{prompt}_details") or {}
    cached = details.get("cached_tokens") or 0
    return Usage(
        input_tokens=(raw.get(prompt) or 0) - cached,
        output_tokens=raw.get(completion) or 0,
        cache_read_tokens=cached,
    )


def expect_chat(body: str, streamed: bool) -> Expected:
    out = Expected()
    if not streamed:
        data = json.loads(body)
        choice = data["choices"][0]
        message = choice["message"]
        out.model = data["model"]
        out.text = (message.get("content") or "") + (message.get("refusal") or "")
        out.calls = [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"] or "{}"))
            for c in message.get("tool_calls") or []
        ]
        out.usage = _openai_usage(data.get("usage"), "prompt_tokens", "completion_tokens")
        refused = bool(message.get("refusal"))
        fallback = "tool_use" if out.calls else "other"
        out.stop = (
            "refusal" if refused else CHAT_STOP.get(choice.get("finish_reason") or "", fallback)
        )
        return out
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish, refused = None, False
    for _, data in sse_events(body):
        if data.startswith("[DONE]"):
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            out.error = errors.TransientError
            break
        out.model = chunk.get("model") or out.model
        if chunk.get("usage"):
            out.usage = _openai_usage(chunk["usage"], "prompt_tokens", "completion_tokens")
        for choice in chunk.get("choices", []):
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            if delta.get("refusal"):
                refused = True
                text.append(delta["refusal"])
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": "", "name": "", "args": ""})
                function = part.get("function") or {}
                call["id"] = part.get("id") or call["id"]
                call["name"] = function.get("name") or call["name"]
                call["args"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    out.text = "".join(text)
    out.calls = [
        (c["id"], c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())
    ]
    # A tool-call turn that never names its finish reason is still a tool-call turn.
    fallback = "tool_use" if out.calls else "other"
    out.stop = "refusal" if refused else CHAT_STOP.get(finish or "", fallback)
    return out


def _responses_final(out: Expected, response: dict[str, Any], with_output: bool) -> None:
    out.model = response["model"]
    out.usage = _openai_usage(response.get("usage"), "input_tokens", "output_tokens")
    text: list[str] = []
    refused = False
    for item in response.get("output") or []:
        if item["type"] == "message":
            for part in item.get("content") or []:
                if part["type"] == "output_text":
                    text.append(part["text"])
                elif part["type"] == "refusal":
                    refused = True
                    text.append(part["refusal"])
        elif item["type"] == "function_call" and with_output:
            out.calls.append((item["call_id"], item["name"], json.loads(item["arguments"] or "{}")))
        elif item["type"] == "reasoning":
            out.thinking += "".join(s.get("text", "") for s in item.get("summary") or [])
    if with_output:
        out.text = "".join(text)
    reason = (response.get("incomplete_details") or {}).get("reason")
    if refused or reason == "content_filter":
        out.stop = "refusal"
    elif response.get("status") == "incomplete":
        out.stop = "max_tokens" if reason == "max_output_tokens" else "other"
    else:
        out.stop = "tool_use" if out.calls else "end_turn"


def expect_responses(body: str, streamed: bool) -> Expected:
    out = Expected()
    if not streamed:
        _responses_final(out, json.loads(body), with_output=True)
        return out
    text: list[str] = []
    calls: dict[str, dict[str, Any]] = {}  # item id → call, from the streamed events alone
    final = None
    for _, data in sse_events(body):
        event = json.loads(data)
        kind = event["type"]
        if kind == "response.output_text.delta":
            text.append(event["delta"])
        elif kind == "response.output_item.added" and event["item"]["type"] == "function_call":
            item = event["item"]
            calls[item["id"]] = {"id": item["call_id"], "name": item["name"], "args": ""}
        elif kind == "response.function_call_arguments.delta":
            calls[event["item_id"]]["args"] += event["delta"]
        elif kind in ("response.completed", "response.incomplete"):
            final = event["response"]
        elif kind in ("error", "response.failed"):
            out.error = errors.TransientError
            return out
    out.text = "".join(text)
    out.calls = [(c["id"], c["name"], json.loads(c["args"] or "{}")) for c in calls.values()]
    assert final is not None, "the recorded stream has no response.completed event"
    _responses_final(out, final, with_output=False)
    return out


def expect(api: str, recorded: Recorded, streamed: bool) -> Expected:
    response = recorded.response
    if response.status >= 400:
        return Expected(error=expected_http_error(response.status, response.body))
    body = response.body.decode()
    if api == "messages":
        if not streamed:
            raise AssertionError("no non-streaming Anthropic recording is expected here")
        return expect_anthropic(body)
    if api == "chat":
        return expect_chat(body, streamed)
    return expect_responses(body, streamed)


# -- running one interaction ---------------------------------------------------------------


def replay_raw(server: ReplayServer, recorded: Recorded) -> None:
    """Consume an interaction no provider makes (e.g. a HEAD for an image URL) by hand."""
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(recorded.request.method, recorded.request.path)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == recorded.response.status, server.failures
    finally:
        connection.close()


class Providers:
    """One provider per model while a cassette plays: an SDK client takes ~50 ms to build."""

    def __init__(self) -> None:
        self._made: dict[Model, Provider] = {}

    def get(self, model: Model) -> Provider:
        if model not in self._made:
            self._made[model] = make_provider("m", model, {"CONFORMANCE_KEY": "test"})
        return self._made[model]

    def close(self) -> None:
        for provider in self._made.values():
            getattr(provider, "client").close()  # noqa: B009 (not part of the Provider protocol)
        self._made.clear()


def check_interaction(
    server: ReplayServer, recorded: Recorded, where: str, providers: Providers
) -> None:
    """Send the recorded request through the real provider and compare the parsed answer."""
    provider_name, api = APIS[recorded.request.path]
    body = recorded.request.body if isinstance(recorded.request.body, dict) else {}
    streamed = bool(body.get("stream"))
    request = build_request(api, body)
    model = Model(
        provider=provider_name,
        name=str(body.get("model", "m")),
        price=Price(input=0.0, output=0.0),
        api=api,
        base_url=server.url if provider_name == "anthropic" else server.openai_url,
        api_key_env="CONFORMANCE_KEY",
        max_tokens=1_000_000,  # the request's own limit applies
    )
    provider = providers.get(model)
    expected = expect(api, recorded, streamed)
    events: list[StreamEvent] = []
    if expected.error is not None:
        with pytest.raises(errors.ProviderError) as raised:
            provider.complete(request, stream=streamed, on_event=events.append)
        assert type(raised.value) is expected.error, (where, raised.value)
        return
    try:
        response = provider.complete(request, stream=streamed, on_event=events.append)
    except errors.ProviderError as exc:
        pytest.fail(f"{where}: {exc!r}; replay server: {server.failures}")

    assert response.model == expected.model, where
    assert response.text == expected.text, where
    calls = [(c.id, c.name, c.arguments) for c in response.tool_calls]
    assert calls == expected.calls, where
    assert all(c.error is None for c in response.tool_calls), (where, response.tool_calls)
    assert response.usage == expected.usage, where
    assert response.stop_reason == expected.stop, (where, response.raw_stop_reason)
    assert response.thinking == expected.thinking, where
    header = "request-id" if api == "messages" else "x-request-id"
    assert response.request_id == recorded.response.header(header), where
    if streamed:
        streamed_text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert streamed_text == expected.text, where
        pieces: dict[int, list[str]] = {}
        for event in events:
            if isinstance(event, ToolCallDelta):
                pieces.setdefault(event.index, []).append(event.arguments)
        streamed_calls = [json.loads("".join(parts) or "{}") for _, parts in sorted(pieces.items())]
        assert streamed_calls == [c.arguments for c in response.tool_calls], where


@pytest.mark.parametrize("cassette", _cases())
def test_cassette_replays_through_provider(cassette: str, conformance_dir: Path) -> None:
    path = conformance_dir / "cassettes" / cassette
    with ReplayServer(path) as server, closing(Providers()) as providers:
        for number, recorded in enumerate(server.interactions, 1):
            where = f"{cassette} interaction {number}"
            if recorded.request.path in APIS:
                check_interaction(server, recorded, where, providers)
            else:
                replay_raw(server, recorded)
        server.assert_complete()
