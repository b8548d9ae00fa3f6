"""The scripted model server, exercised through the real anthropic and openai SDKs.

If the SDKs parse what the server sends, provider tests built on it test the real
adapters against the real wire shapes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from agentctl.testing.llm_server import LLMServer, Turn, count_request_tokens, count_tokens

USER = [{"role": "user", "content": "hi"}]
MESSAGES: dict[str, Any] = {"model": "claude-x", "max_tokens": 100, "messages": USER}
CHAT: dict[str, Any] = {"model": "gpt-x", "messages": USER}
RESPONSES: dict[str, Any] = {"model": "gpt-x", "input": "hi"}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    """One transport for the module: building an SDK's default one costs ~50 ms (TLS setup)."""
    with httpx2.Client() as client:
        yield client


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def claude(server: LLMServer, http: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.anthropic_url, api_key="k", max_retries=0, http_client=http
    )


@pytest.fixture
def oai(server: LLMServer, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="k", max_retries=0, http_client=http)


# -- text -----------------------------------------------------------------------------


def test_anthropic_text_and_usage(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script("claude-x", Turn.text("Hello there"), Turn.text("Hello again"))
    message = claude.messages.create(**MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == count_request_tokens("messages", MESSAGES) == 1
    assert message.usage.output_tokens == count_tokens("Hello there") == 3
    assert message._request_id == "req_1"
    with claude.messages.stream(**MESSAGES) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].type == "text"
    assert streamed.content[0].text == "Hello again"
    assert streamed.usage.output_tokens == 3
    assert streamed.usage.cache_read_input_tokens == 0
    first, second = server.requests
    assert (first.api, first.stream, second.stream) == ("messages", False, True)
    assert first.path == "/v1/messages"
    assert first.headers["authorization"] == "Bearer k"
    assert first.usage == {
        "input_tokens": 1,
        "output_tokens": 3,
        "cache_write_tokens": 0,
        "cache_read_tokens": 0,
    }
    server.assert_complete()


def test_anthropic_stream_events_in_wire_order(
    server: LLMServer, claude: anthropic.Anthropic
) -> None:
    server.script("claude-x", Turn.text("a long enough answer"))
    kinds = [event.type for event in claude.messages.create(**MESSAGES, stream=True)]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds.count("content_block_delta") >= 2
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_chat_text_stream_usage_only_when_asked(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script("gpt-x", Turn.text("Hello there"), Turn.text("Hi"), Turn.text("Yo"))
    completion = oai.chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion._request_id == "req_1"
    chunks = list(oai.chat.completions.create(**CHAT, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi"
    assert all(c.usage is None for c in chunks)
    with oai.chat.completions.stream(**CHAT, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Yo"
    assert final.usage is not None
    assert final.usage.total_tokens == 2


def test_responses_text(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script("gpt-x", Turn.text("Hello there"), Turn.text("Hello again"))
    response = oai.responses.create(**RESPONSES)
    assert response.output_text == "Hello there"
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens == 1
    assert response.usage.output_tokens == 3
    assert response.usage.input_tokens_details.cached_tokens == 0
    with oai.responses.stream(**RESPONSES) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello again"
    assert final.usage is not None
    assert final.usage.total_tokens == 4


def test_responses_stream_sequence_numbers_increase(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script("gpt-x", Turn.tool_call("read", {"path": "a.py"}, text="Let me look"))
    events = list(oai.responses.create(**RESPONSES, stream=True))
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.done" in kinds
    assert kinds[-1] == "response.completed"


# -- tool calls -----------------------------------------------------------------------


def test_anthropic_tool_calls(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(
        "claude-x",
        Turn.tool_call("read", {"path": "a.py"}, text="Let me look"),
        Turn.tool_calls([("read", {"path": "a.py"}), ("grep", {"pattern": "def"})]),
    )
    message = claude.messages.create(**MESSAGES)
    assert message.stop_reason == "tool_use"
    text, call = message.content
    assert text.type == "text"
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("toolu_1", "read", {"path": "a.py"})
    with claude.messages.stream(**MESSAGES) as stream:
        streamed = stream.get_final_message()
    calls = [(b.id, b.name, b.input) for b in streamed.content if b.type == "tool_use"]
    assert calls == [("toolu_2", "read", {"path": "a.py"}), ("toolu_3", "grep", {"pattern": "def"})]


def test_chat_tool_calls(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(
        "gpt-x",
        Turn.tool_call("read", {"path": "a.py"}, id="call_custom"),
        Turn.tool_calls([("read", {"path": "a.py"}), ("grep", '{"pattern": "de')]),
    )
    message = oai.chat.completions.create(**CHAT).choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    first = message.tool_calls[0]
    assert first.type == "function"
    assert (first.id, first.function.name) == ("call_custom", "read")
    assert json.loads(first.function.arguments) == {"path": "a.py"}
    with oai.chat.completions.stream(**CHAT) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "read", '{"path": "a.py"}'),
        ("call_2", "grep", '{"pattern": "de'),  # malformed JSON is sent verbatim
    ]


def test_responses_tool_calls(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(
        "gpt-x",
        Turn.tool_call("read", {"path": "a.py"}),
        Turn.tool_call("read", {"path": "b.py"}, text="Looking"),
    )
    response = oai.responses.create(**RESPONSES)
    (call,) = response.output
    assert call.type == "function_call"
    assert (call.id, call.call_id, call.name) == ("fc_1", "call_1", "read")
    assert json.loads(call.arguments) == {"path": "a.py"}
    with oai.responses.stream(**RESPONSES) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Looking"
    call = final.output[1]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"path": "b.py"}


def test_anthropic_malformed_arguments(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script("claude-x", *[Turn.tool_call("read", '{"path": "a.py"')] * 2)
    (call,) = claude.messages.create(**MESSAGES).content
    assert call.type == "tool_use"
    assert call.input == {}  # a non-streaming tool_use must carry an object
    fragments = [
        event.delta.partial_json
        for event in claude.messages.create(**MESSAGES, stream=True)
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
    ]
    assert len(fragments) >= 2
    assert "".join(fragments) == '{"path": "a.py"'


# -- thinking, truncation, empty, stop mapping ---------------------------------------


def test_thinking_in_each_api(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.script("*", *[Turn.thinking("Let me think.", "42")] * 4)
    with claude.messages.stream(**MESSAGES) as stream:
        thinking, text = stream.get_final_message().content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think."
    assert thinking.signature
    assert text.type == "text"
    assert text.text == "42"
    completion = oai.chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == "42"
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 4
    response = oai.responses.create(**RESPONSES)
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content
    assert response.output_text == "42"
    with oai.responses.stream(**RESPONSES) as responses_stream:
        final = responses_stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 4


def test_truncated_tool_call(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    partial = '{"path": "a.py", "content": "x'
    server.script("*", *[Turn.truncated_tool_call("write", partial)] * 4)
    message = claude.messages.create(**MESSAGES)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {}
    fragments = [
        event.delta.partial_json
        for event in claude.messages.create(**MESSAGES, stream=True)
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
    ]
    assert "".join(fragments) == partial
    choice = oai.chat.completions.create(**CHAT).choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.arguments == partial
    response = oai.responses.create(**RESPONSES)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].type == "function_call"
    assert response.output[0].arguments == partial


def test_empty_and_stop_mapping(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.script("claude-x", Turn.empty(), Turn.text("No.", stop="refusal"))
    server.script("gpt-x", Turn.empty(), Turn.text("No.", stop="refusal"), Turn.empty())
    server.script("gpt-y", Turn.text("No.", stop="refusal"), Turn.text("cut", stop="max_tokens"))
    empty = claude.messages.create(**MESSAGES)
    assert (empty.content, empty.stop_reason) == ([], "end_turn")
    assert claude.messages.create(**MESSAGES).stop_reason == "refusal"
    choice = oai.chat.completions.create(**CHAT).choices[0]
    assert (choice.message.content, choice.finish_reason) == ("", "stop")
    assert oai.chat.completions.create(**CHAT).choices[0].finish_reason == "content_filter"
    response = oai.responses.create(**RESPONSES)
    assert (response.output, response.status) == ([], "completed")
    refused = oai.responses.create(**{**RESPONSES, "model": "gpt-y"})
    assert refused.status == "incomplete"
    assert refused.incomplete_details is not None
    assert refused.incomplete_details.reason == "content_filter"
    kinds = [e.type for e in oai.responses.create(**{**RESPONSES, "model": "gpt-y"}, stream=True)]
    assert kinds[-1] == "response.incomplete"
    server.assert_complete()


# -- HTTP errors ----------------------------------------------------------------------


def test_anthropic_errors(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(
        "claude-x",
        Turn.rate_limited(retry_after_ms=20),
        Turn.overloaded(),
        Turn.quota_exceeded(),
        Turn.error(400, message="bad", code="some_code"),
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(**MESSAGES)
    assert limited.value.response.headers["retry-after-ms"] == "20"
    assert limited.value.request_id == "req_1"
    assert limited.value.type == "rate_limit_error"
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(**MESSAGES)
    with pytest.raises(anthropic.PaymentRequiredError):
        claude.messages.create(**MESSAGES)
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(**MESSAGES)
    assert bad.value.api_message == "bad"


def test_openai_errors(server: LLMServer, oai: openai.OpenAI) -> None:
    vllm = {"object": "error", "message": "no", "type": "BadRequestError", "code": 400}
    server.script(
        "gpt-x",
        Turn.rate_limited(retry_after_ms=20),
        Turn.quota_exceeded(),
        Turn.overloaded(),
        Turn.error(400, body=vllm),
    )
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(**CHAT)
    assert limited.value.response.headers["retry-after-ms"] == "20"
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.request_id == "req_1"
    with pytest.raises(openai.RateLimitError) as quota:
        oai.responses.create(**RESPONSES)
    assert quota.value.code == "insufficient_quota"
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(**CHAT)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(**CHAT)
    assert bad.value.type == "BadRequestError"  # read from the unwrapped body


def test_wrong_key_is_401_in_each_shape() -> None:
    with LLMServer(api_key="right") as server:
        server.script("*", Turn.text("never sent"))
        claude = anthropic.Anthropic(base_url=server.anthropic_url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as denied:
            claude.messages.create(**MESSAGES)
        assert denied.value.type == "authentication_error"
        oai = openai.OpenAI(base_url=server.openai_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as rejected:
            oai.chat.completions.create(**CHAT)
        assert rejected.value.code == "invalid_api_key"
        good = anthropic.Anthropic(base_url=server.anthropic_url, api_key="right", max_retries=0)
        assert good.messages.create(**MESSAGES).content[0].type == "text"
        server.assert_complete()


# -- mid-stream errors, stalls, drops ------------------------------------------------


def test_mid_stream_errors(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.script("*", Turn.stream_error(), Turn.stream_error(), Turn.stream_error(after=2))
    with pytest.raises(anthropic.APIStatusError) as broken, claude.messages.stream(**MESSAGES) as s:
        s.get_final_message()
    assert not isinstance(broken.value, anthropic.OverloadedError)
    assert (broken.value.status_code, broken.value.type) == (200, "overloaded_error")
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(oai.chat.completions.create(**CHAT, stream=True))
    kinds = [event.type for event in oai.responses.create(**RESPONSES, stream=True)]
    assert kinds.count("response.output_text.delta") == 2
    assert kinds[-2:] == ["error", "response.failed"]


def test_stream_error_without_stream_is_an_http_error(
    server: LLMServer, claude: anthropic.Anthropic
) -> None:
    server.script("claude-x", Turn.stream_error())
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(**MESSAGES)


def test_stall_hits_the_client_timeout(server: LLMServer) -> None:
    server.script("*", *[Turn.stall(after=1, seconds=5)] * 3)
    claude = anthropic.Anthropic(
        base_url=server.anthropic_url, api_key="k", max_retries=0, timeout=0.3
    )
    oai = openai.OpenAI(base_url=server.openai_url, api_key="k", max_retries=0, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        claude.messages.create(**MESSAGES)
    with pytest.raises(openai.APITimeoutError):
        list(oai.chat.completions.create(**CHAT, stream=True))
    # anthropic 2.14 lets the transport's exception escape from a stream being read.
    with pytest.raises((anthropic.APITimeoutError, httpx2.TimeoutException)):
        list(claude.messages.create(**MESSAGES, stream=True))
    assert time.monotonic() - started < 2


def test_short_stall_then_the_answer(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script("claude-x", Turn.stall(after=2, seconds=0.1, text="slow answer"))
    with claude.messages.stream(**MESSAGES) as stream:
        message = stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == "slow answer"


def test_drop_is_a_connection_error(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.script("*", Turn.drop(), Turn.drop(), Turn.drop(after=1), Turn.text("recovered"))
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(**MESSAGES)
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(**CHAT)
    with pytest.raises(openai.APIConnectionError):
        list(oai.responses.create(**RESPONSES, stream=True))
    assert oai.responses.create(**RESPONSES).output_text == "recovered"


# -- scripting rules ------------------------------------------------------------------


def test_unexpected_extra_request_fails_loudly(
    server: LLMServer, claude: anthropic.Anthropic
) -> None:
    server.script("claude-x", Turn.text("only one"))
    claude.messages.create(**MESSAGES)
    with pytest.raises(anthropic.InternalServerError, match="unexpected extra request"):
        claude.messages.create(**MESSAGES)
    with pytest.raises(AssertionError, match="unexpected extra request for model claude-x"):
        server.assert_complete()


def test_unconsumed_turns_fail(server: LLMServer) -> None:
    server.script("claude-x", Turn.text("never asked"))
    with pytest.raises(AssertionError, match="1 scripted turn"):
        server.assert_complete()


def test_named_model_before_wildcard(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script("*", Turn.text("anyone"))
    server.script("gpt-x", Turn.text("named"))
    assert oai.responses.create(**RESPONSES).output_text == "named"
    assert oai.responses.create(**RESPONSES).output_text == "anyone"
    server.assert_complete()


def test_usage_override_and_raw(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(
        "gpt-x",
        Turn.text("x", usage={"input_tokens": 100, "cache_read_tokens": 60}),
        Turn.raw(200, {"content-type": "application/json"}, b'{"id": "r", "choices": []}'),
    )
    usage = oai.chat.completions.create(**CHAT).usage
    assert usage is not None
    assert usage.prompt_tokens == 160  # OpenAI counts cached tokens inside prompt_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 60
    assert oai.chat.completions.create(**CHAT).choices == []
    with pytest.raises(ValueError, match="unknown usage keys"):
        Turn.text("x", usage={"prompt_tokens": 1})


def test_chat_done_and_comments_options() -> None:
    with LLMServer(chat_done=False, sse_comments=True) as server:
        server.script("gpt-x", *[Turn.text("fine")] * 3)
        oai = openai.OpenAI(base_url=server.openai_url, api_key="k", max_retries=0)
        for _ in range(3):
            with oai.chat.completions.stream(**CHAT) as stream:
                assert stream.get_final_completion().choices[0].message.content == "fine"
        assert server.connections == 1  # without [DONE] the SDK reads to the end and reuses


# -- performance, concurrency ---------------------------------------------------------


def test_keep_alive_and_speed(
    server: LLMServer, claude: anthropic.Anthropic, oai: openai.OpenAI
) -> None:
    server.script("*", *[Turn.text("ok")] * 65)
    claude.messages.create(**MESSAGES)  # warm the SDK's lazy imports
    started = time.perf_counter()
    for _ in range(50):
        claude.messages.create(**MESSAGES)
    elapsed = time.perf_counter() - started
    for _ in range(9):
        with claude.messages.stream(**MESSAGES) as stream:
            stream.get_final_message()
    for _ in range(5):
        with oai.responses.stream(**RESPONSES) as responses_stream:
            responses_stream.get_final_response()
    assert server.connections == 1  # both SDKs share the module's transport here
    assert elapsed < 1.0


def test_chat_streams_keep_the_connection_when_the_sdk_drains() -> None:
    """The sync openai Stream stops at [DONE] without reading the chunked terminator, so
    httpx discards the connection; the async one drains it and reuses the connection."""

    async def five_streams(client: openai.AsyncOpenAI) -> None:
        for _ in range(5):
            async with client.chat.completions.stream(**CHAT) as stream:
                await stream.get_final_completion()

    with LLMServer() as server:
        server.script("gpt-x", *[Turn.text("ok")] * 5)
        client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="k", max_retries=0)
        asyncio.run(five_streams(client))
        assert server.connections == 1


def test_max_in_flight(server: LLMServer) -> None:
    server.script("claude-x", *[Turn.text("slow", delay=0.2)] * 3)
    errors: list[BaseException] = []

    def call() -> None:
        client = anthropic.Anthropic(base_url=server.anthropic_url, api_key="k", max_retries=0)
        try:
            client.messages.create(**MESSAGES)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.max_in_flight("claude-x") == 3
    assert server.max_in_flight("other") == 0


# -- token counting and caching -------------------------------------------------------


def test_count_tokens_endpoint(server: LLMServer, claude: anthropic.Anthropic) -> None:
    body = {"model": "claude-x", "system": "You are terse.", "messages": USER}
    counted = claude.messages.count_tokens(**body)
    assert counted.input_tokens == count_request_tokens("messages", body) == 5
    assert server.requests[0].api == "count_tokens"
    server.assert_complete()


def test_anthropic_prompt_caching(server: LLMServer, claude: anthropic.Anthropic) -> None:
    tools: Any = [
        {
            "name": "read",
            "description": "Read a file.",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
    ]
    system: Any = [{"type": "text", "text": "S" * 400, "cache_control": {"type": "ephemeral"}}]
    server.script("claude-x", Turn.text("one"), Turn.text("two"), Turn.text("three"))
    first = claude.messages.create(**MESSAGES, tools=tools, system=system).usage
    cached = first.cache_creation_input_tokens or 0
    assert cached > 100
    assert first.cache_read_input_tokens == 0
    assert first.input_tokens == 1  # only "hi" is outside the cached prefix
    second = claude.messages.create(**MESSAGES, tools=tools, system=system).usage
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (cached, 0)
    assert second.input_tokens == 1
    third = claude.messages.create(**MESSAGES, system="no breakpoints").usage
    assert (third.cache_read_input_tokens, third.cache_creation_input_tokens) == (0, 0)
    assert server.requests[1].usage == {
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_write_tokens": 0,
        "cache_read_tokens": cached,
    }


def test_openai_automatic_prefix_caching(server: LLMServer, oai: openai.OpenAI) -> None:
    long_system = {"role": "system", "content": "S" * 4096}
    messages: Any = [long_system, {"role": "user", "content": "first"}]
    server.script("gpt-x", Turn.text("a"), Turn.text("b"))
    first = oai.chat.completions.create(model="gpt-x", messages=messages).usage
    assert first is not None
    assert first.prompt_tokens_details is not None
    assert first.prompt_tokens_details.cached_tokens == 0
    messages = [long_system, {"role": "user", "content": "second"}]
    second = oai.chat.completions.create(model="gpt-x", messages=messages).usage
    assert second is not None
    assert second.prompt_tokens_details is not None
    assert second.prompt_tokens_details.cached_tokens == 1024
    assert second.prompt_tokens == 1024 + 2


def test_count_tokens_rule() -> None:
    assert count_tokens("") == 0
    assert count_tokens("a") == 1
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("é" * 4) == 2  # utf-8 bytes, not characters
