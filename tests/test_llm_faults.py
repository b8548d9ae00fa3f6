"""RELIABILITY.md's API faults, through the real SDKs against the scripted server.

Each test runs once per API (Anthropic Messages, Chat Completions, Responses): the
provider talks real HTTP to ``agentctl.testing.LLMServer`` on 127.0.0.1. Waits are
recorded by an injected ``sleep``, so nothing sleeps for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.config.schema import Model, Price
from agentctl.errors import (
    AuthError,
    BadRequestError,
    QuotaError,
    RateLimitedError,
    TransientError,
)
from agentctl.llm.call import Caller
from agentctl.llm.types import Message, Request, StreamEvent, TextDelta, ToolSpec
from agentctl.testing.llm_server import LLMServer, Turn

APIS = ["messages", "chat", "responses"]
KEY = {"TEST_KEY": "sk-test"}
READ = ToolSpec(
    "read",
    "read a file",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
ASK = Request(messages=(Message("user", "read a.py"),), tools=(READ,), max_tokens=256)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def model(api: str, server: LLMServer, name: str = "m", **options: Any) -> Model:
    common: dict[str, Any] = {
        "name": name,
        "api_key_env": "TEST_KEY",
        "price": Price(1.0, 2.0),
        "idle_timeout": 0.4,
        "timeout": 5.0,
        **options,
    }
    if api == "messages":
        return Model(provider="anthropic", base_url=server.anthropic_url, **common)
    return Model(provider="openai", api=api, base_url=server.openai_url, **common)


def caller(tmp_path: Path, **models: Model) -> tuple[Caller, list[float]]:
    waits: list[float] = []
    return Caller(models, lock_dir=tmp_path, environ=KEY, sleep=waits.append), waits


@pytest.mark.parametrize("api", APIS)
def test_429_with_retry_after_is_retried_after_the_asked_wait(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.rate_limited(retry_after_ms=250), Turn.text("done"))
    call, waits = caller(tmp_path, m=model(api, server))
    outcome = call.complete(ASK, ["m"])
    assert outcome.response.text == "done"
    assert waits == [0.25]
    assert "rate limited" in outcome.attempts[0].error
    server.assert_complete()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", [500, 529, 503])
def test_server_errors_are_retried(
    api: str, status: int, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.error(status), Turn.text("done"))
    call, waits = caller(tmp_path, m=model(api, server))
    assert call.complete(ASK, ["m"]).response.text == "done"
    assert len(waits) == 1 and 0.375 <= waits[0] <= 0.5
    server.assert_complete()


@pytest.mark.parametrize("api", APIS)
def test_errors_name_model_status_and_request_id(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", *[Turn.rate_limited(10)] * 3)
    call, _ = caller(tmp_path, m=model(api, server))
    with pytest.raises(RateLimitedError) as err:
        call.complete(ASK, ["m"])
    assert err.value.status == 429 and err.value.request_id
    assert str(err.value).startswith("m: rate limited")
    assert f"request {err.value.request_id}" in str(err.value)


@pytest.mark.parametrize("api", APIS)
def test_spend_cap_is_not_retried(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", Turn.quota_exceeded())
    call, waits = caller(tmp_path, m=model(api, server), b=model(api, server, "b"))
    with pytest.raises(QuotaError, match="spend limit or quota reached"):
        call.complete(ASK, ["m", "b"])  # not even the fallback: more spend cannot help
    assert waits == []
    server.assert_complete()


@pytest.mark.parametrize("api", APIS)
def test_bad_request_is_not_retried(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", Turn.error(400, message="messages: field required"))
    call, waits = caller(tmp_path, m=model(api, server))
    with pytest.raises(BadRequestError, match="field required"):
        call.complete(ASK, ["m"])
    assert waits == []


@pytest.mark.parametrize("api", APIS)
def test_a_wrong_key_falls_back_to_the_next_model(api: str, tmp_path: Path) -> None:
    with LLMServer(api_key="the-right-key") as guarded, LLMServer() as other:
        other.script("b", Turn.text("from b"))
        call, _ = caller(tmp_path, m=model(api, guarded), b=model(api, other, "b"))
        outcome = call.complete(ASK, ["m", "b"])
        assert outcome.model == "b" and outcome.response.text == "from b"
        assert "API key was refused" in outcome.attempts[0].error
        with pytest.raises(AuthError):
            caller(tmp_path, m=model(api, guarded))[0].complete(ASK, ["m"])


@pytest.mark.parametrize("api", APIS)
def test_fallback_model_after_retries(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", *[Turn.overloaded()] * 2)
    server.script("b", Turn.text("fallback answered"))
    call, _ = caller(tmp_path, m=model(api, server, max_retries=1), b=model(api, server, "b"))
    outcome = call.complete(ASK, ["m", "b"])
    assert (outcome.model, outcome.response.text) == ("b", "fallback answered")
    server.assert_complete()


@pytest.mark.parametrize("api", APIS)
def test_connection_refused_is_transient(api: str, tmp_path: Path) -> None:
    with LLMServer() as gone:
        dead = model(api, gone, max_retries=1)
    call, waits = caller(tmp_path, m=dead)  # the server is closed: nothing listens
    with pytest.raises(TransientError, match="connection failed"):
        call.complete(ASK, ["m"])
    assert len(waits) == 1


@pytest.mark.parametrize("api", APIS)
def test_a_stalled_stream_is_aborted_by_the_watchdog_and_retried(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.stall(after=2, seconds=5.0), Turn.text("second try"))
    call, _ = caller(tmp_path, m=model(api, server))
    events: list[StreamEvent] = []
    outcome = call.complete(ASK, ["m"], on_event=events.append)
    assert outcome.response.text == "second try"
    assert "no data for 0.4 s" in outcome.attempts[0].error
    assert any(type(e).__name__ == "Restart" for e in events)


@pytest.mark.parametrize("api", APIS)
def test_a_reset_connection_is_retried(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", Turn.drop(after=2), Turn.text("again"))
    call, _ = caller(tmp_path, m=model(api, server))
    assert call.complete(ASK, ["m"], on_event=lambda e: None).response.text == "again"


@pytest.mark.parametrize("api", APIS)
def test_an_error_event_mid_stream_is_retried(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", Turn.stream_error(after=2), Turn.text("recovered"))
    call, _ = caller(tmp_path, m=model(api, server))
    outcome = call.complete(ASK, ["m"], on_event=lambda e: None)
    assert outcome.response.text == "recovered"
    assert "stream error" in outcome.attempts[0].error


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_max_tokens_inside_a_tool_call_is_reported(
    api: str, stream: bool, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.truncated_tool_call("read", '{"path": "a.'))
    call, _ = caller(tmp_path, m=model(api, server))
    response = call.complete(ASK, ["m"], stream=stream).response
    assert response.stop_reason == "max_tokens"
    assert response.truncated_tool_call  # the partial call must never be executed


@pytest.mark.parametrize("api", APIS)
def test_malformed_tool_json_and_unknown_tools_are_structured_errors(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script(
        "m",
        Turn.tool_calls([("read", '{"path": "a.py"'), ("delete_everything", {"path": "/"})]),
    )
    call, _ = caller(tmp_path, m=model(api, server))
    response = call.complete(ASK, ["m"], on_event=lambda e: None).response
    bad_json, unknown = response.tool_calls
    assert bad_json.arguments is None and "not valid JSON" in (bad_json.error or "")
    assert unknown.arguments is None and "unknown tool 'delete_everything'" in (unknown.error or "")


@pytest.mark.parametrize("api", APIS)
def test_arguments_failing_the_schema_are_a_structured_error(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.tool_call("read", {"file": "a.py"}))
    call, _ = caller(tmp_path, m=model(api, server))
    (bad,) = call.complete(ASK, ["m"]).response.tool_calls
    assert bad.error == "arguments is missing the required property 'path'"


@pytest.mark.parametrize("api", APIS)
def test_empty_replies_and_refusals_are_distinct(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.empty(), Turn.text("I can't help with that.", stop="refusal"))
    call, _ = caller(tmp_path, m=model(api, server))
    empty = call.complete(ASK, ["m"]).response
    assert empty.empty and empty.stop_reason == "end_turn"
    refusal = call.complete(ASK, ["m"]).response
    assert refusal.stop_reason == "refusal"


@pytest.mark.parametrize("api", APIS)
def test_a_good_tool_call_streams_and_parses(api: str, server: LLMServer, tmp_path: Path) -> None:
    server.script("m", Turn.tool_call("read", {"path": "a.py"}, text="Let me look."))
    call, _ = caller(tmp_path, m=model(api, server))
    events: list[StreamEvent] = []
    response = call.complete(ASK, ["m"], on_event=events.append).response
    (tool,) = response.tool_calls
    assert (tool.name, tool.arguments, tool.error) == ("read", {"path": "a.py"}, None)
    assert response.stop_reason == "tool_use" and response.text == "Let me look."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me look."
    assert response.usage.output_tokens > 0 and response.request_id


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_compatible_server_quirks_are_tolerated(stream: bool, tmp_path: Path) -> None:
    """No [DONE], SSE comments between chunks (OpenRouter), errors without the wrapper (vLLM)."""
    with LLMServer(chat_done=False, sse_comments=True) as quirky:
        quirky.script(
            "m",
            Turn.tool_call("read", {"path": "a.py"}, text="Reading."),
            Turn.error(
                400,
                body={
                    "object": "error",
                    "message": "max_tokens is too large",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            ),
        )
        call, _ = caller(tmp_path, m=model("chat", quirky))
        response = call.complete(ASK, ["m"], stream=stream).response
        assert response.text == "Reading." and response.tool_calls[0].arguments == {"path": "a.py"}
        with pytest.raises(BadRequestError, match="max_tokens is too large"):
            call.complete(ASK, ["m"], stream=stream)
        quirky.assert_complete()


@pytest.mark.parametrize("api", ["messages", "responses"])
def test_reasoning_is_sent_back_verbatim_on_the_next_turn(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    """Thinking blocks (with signatures) / encrypted reasoning items must round-trip."""
    server.script("m", Turn.thinking("Let me think about a.py.", "Reading it."), Turn.text("ok"))
    budget = (
        {"thinking_budget": 2048, "max_tokens": 8192}
        if api == "messages"
        else {"reasoning_effort": "low"}
    )
    call, _ = caller(tmp_path, m=model(api, server, **budget))
    first = call.complete(ASK, ["m"]).response
    assert first.thinking == "Let me think about a.py." or api == "responses"
    history = (*ASK.messages, first.message(), Message("user", "go on"))
    call.complete(Request(messages=history, tools=ASK.tools), ["m"])
    sent = server.requests[1].body
    if api == "messages":
        assert server.requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        (thinking,) = [b for b in sent["messages"][1]["content"] if b["type"] == "thinking"]
        assert thinking["thinking"] == "Let me think about a.py." and thinking["signature"]
    else:
        assert server.requests[0].body["include"] == ["reasoning.encrypted_content"]
        (reasoning,) = [i for i in sent["input"] if i.get("type") == "reasoning"]
        assert reasoning["encrypted_content"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_garbled_answer_is_retried(
    api: str, stream: bool, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.garbled(after=1), Turn.text("recovered"))
    call, _ = caller(tmp_path, m=model(api, server))
    outcome = call.complete(ASK, ["m"], stream=stream)
    assert outcome.response.text == "recovered"
    assert "garbled" in outcome.attempts[0].error


@pytest.mark.parametrize("api", APIS)
def test_a_garbled_stream_with_no_retries_left_is_a_provider_error(
    api: str, server: LLMServer, tmp_path: Path
) -> None:
    server.script("m", Turn.garbled(after=2))
    call, _ = caller(tmp_path, m=model(api, server, max_retries=0))
    with pytest.raises(TransientError, match="garbled") as raised:
        call.complete(ASK, ["m"])
    assert "JSONDecodeError" not in str(raised.value)
