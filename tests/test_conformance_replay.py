"""The replay server itself, on small hand-written cassettes; and recorded error answers.

The real cassettes hold no error responses, so the error mapping is checked here on
cassettes in the same VCR shape, with bodies as WIRE.md documents them.
"""

from __future__ import annotations

import gzip
import http.client
import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl import errors
from agentctl.testing.replay import ReplayServer
from tests.test_conformance_providers import Providers, check_interaction, expected_http_error


def _interaction(
    uri: str,
    *,
    status: int = 200,
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
    request: dict[str, Any] | None = None,
    method: str = "POST",
) -> dict[str, Any]:
    return {
        "request": {
            "body": json.dumps(request) if request is not None else "",
            "headers": {"Content-Type": ["application/json"]},
            "method": method,
            "uri": uri,
        },
        "response": {
            "body": {"string": body},
            "headers": {name: [value] for name, value in (headers or {}).items()},
            "status": {"code": status, "message": "X"},
        },
    }


def _cassette(tmp_path: Path, *interactions: dict[str, Any]) -> Path:
    path = tmp_path / "cassette.yaml"
    path.write_text(yaml.safe_dump({"interactions": list(interactions), "version": 1}))
    return path


def _call(
    server: ReplayServer, path: str, body: bytes = b"{}", conn: Any = None
) -> tuple[int, dict[str, str], bytes]:
    port = int(server.url.rsplit(":", 1)[1])
    connection = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.read()
    if conn is None:
        connection.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data


MESSAGES = "https://api.anthropic.com/v1/messages"
CHAT = "https://api.openai.com/v1/chat/completions"
RESPONSES = "https://api.openai.com/v1/responses"


def test_gzip_bodies_are_served_decoded_with_recorded_headers(tmp_path: Path) -> None:
    payload = b'{"ok": true}'
    path = _cassette(
        tmp_path,
        _interaction(
            MESSAGES,
            request={"model": "claude-x", "stream": False},
            body=gzip.compress(payload),  # safe_dump writes bytes as !!binary
            headers={
                "Content-Encoding": "gzip",
                "Content-Length": "999",
                "Transfer-Encoding": "chunked",
                "Content-Type": "application/json",
                "request-id": "req_1",
                "x-request-id": "req_2",
            },
        ),
    )
    assert "!!binary" in path.read_text()
    with ReplayServer(path) as server:
        recorded = server.interactions[0]
        assert (recorded.request.method, recorded.request.path) == ("POST", "/v1/messages")
        assert recorded.request.body == {"model": "claude-x", "stream": False}
        assert (recorded.response.status, recorded.response.body) == (200, payload)
        status, headers, data = _call(server, "/v1/messages", b'{"sent": 1}')
        assert (status, data) == (200, payload)
        assert "content-encoding" not in headers and "transfer-encoding" not in headers
        assert headers["content-length"] == str(len(payload))
        assert headers["content-type"] == "application/json"
        assert (headers["request-id"], headers["x-request-id"]) == ("req_1", "req_2")
        assert server.requests == [{"sent": 1}]
        server.assert_complete()


def test_interactions_are_served_in_order_on_one_connection(tmp_path: Path) -> None:
    path = _cassette(
        tmp_path,
        _interaction(MESSAGES, body="first"),
        _interaction(MESSAGES, body="second"),
        _interaction(CHAT, body="third"),
    )
    with ReplayServer(path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            bodies = [_call(server, p, conn=connection)[2] for p in ("/v1/messages",) * 2]
            bodies.append(_call(server, "/v1/chat/completions", conn=connection)[2])
        finally:
            connection.close()
        assert bodies == [b"first", b"second", b"third"]
        assert server.openai_url == server.url + "/v1"
        server.assert_complete()


def test_a_wrong_path_answers_500_and_fails_assert_complete(tmp_path: Path) -> None:
    path = _cassette(tmp_path, _interaction(MESSAGES, body="ok"))
    with ReplayServer(path) as server:
        status, _, data = _call(server, "/v1/chat/completions")
        assert status == 500
        assert b"/v1/messages" in data
        assert _call(server, "/v1/messages")[2] == b"ok"  # the interaction was not consumed
        with pytest.raises(AssertionError, match="cassette recorded POST /v1/messages"):
            server.assert_complete()


def test_an_extra_request_answers_500_and_fails_assert_complete(tmp_path: Path) -> None:
    path = _cassette(tmp_path, _interaction(MESSAGES, body="ok"))
    with ReplayServer(path) as server:
        _call(server, "/v1/messages")
        assert _call(server, "/v1/messages")[0] == 500
        with pytest.raises(AssertionError, match="past the end of the cassette"):
            server.assert_complete()


def test_unrequested_interactions_fail_assert_complete(tmp_path: Path) -> None:
    path = _cassette(tmp_path, _interaction(MESSAGES), _interaction(MESSAGES))
    with ReplayServer(path) as server:
        _call(server, "/v1/messages")
        with pytest.raises(AssertionError, match="1 of 2 recorded interactions"):
            server.assert_complete()


def test_head_requests_get_headers_only(tmp_path: Path) -> None:
    path = _cassette(
        tmp_path,
        _interaction(
            "https://example.com/a.jpg", method="HEAD", headers={"Content-Type": "image/jpeg"}
        ),
    )
    with ReplayServer(path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("HEAD", "/a.jpg")
        answer = connection.getresponse()
        assert (answer.status, answer.getheader("content-type")) == (200, "image/jpeg")
        connection.close()
        server.assert_complete()


# -- recorded failures through the real providers -------------------------------------


def _anthropic_error(kind: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _openai_error(kind: str, code: str | None, message: str) -> str:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


ERRORS = [
    pytest.param(
        MESSAGES,
        429,
        _anthropic_error("rate_limit_error", "Number of requests has exceeded your rate limit"),
        errors.RateLimitedError,
        id="anthropic-429",
    ),
    pytest.param(
        MESSAGES,
        401,
        _anthropic_error("authentication_error", "invalid x-api-key"),
        errors.AuthError,
        id="anthropic-401",
    ),
    pytest.param(
        MESSAGES,
        529,
        _anthropic_error("overloaded_error", "Overloaded"),
        errors.TransientError,
        id="anthropic-529",
    ),
    pytest.param(
        CHAT,
        429,
        _openai_error("insufficient_quota", "insufficient_quota", "You exceeded your quota"),
        errors.QuotaError,
        id="chat-429-quota",
    ),
    pytest.param(
        CHAT,
        400,
        _openai_error("invalid_request_error", None, "Invalid 'messages'"),
        errors.BadRequestError,
        id="chat-400",
    ),
    pytest.param(
        RESPONSES,
        500,
        _openai_error("server_error", None, "The server had an error"),
        errors.TransientError,
        id="responses-500",
    ),
]


@pytest.mark.parametrize(("uri", "status", "body", "error"), ERRORS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_recorded_http_errors_raise_the_agentctl_error(
    tmp_path: Path, uri: str, status: int, body: str, error: type, stream: bool
) -> None:
    assert expected_http_error(status, body.encode()) is error
    request = {
        "model": "m",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        "input": "hi",
    }
    headers = {"Content-Type": "application/json", "request-id": "req_e", "x-request-id": "req_e"}
    path = _cassette(
        tmp_path, _interaction(uri, status=status, body=body, headers=headers, request=request)
    )
    with ReplayServer(path) as server, closing(Providers()) as providers:
        check_interaction(server, server.interactions[0], f"{uri} {status}", providers)
        server.assert_complete()


STREAM_ERRORS = [
    pytest.param(
        MESSAGES,
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        '"type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,'
        '"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        '"message":"Overloaded"}}\n\n',
        id="anthropic",
    ),
    pytest.param(
        CHAT,
        'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        'data: {"error":{"message":"upstream failed","code":502},'
        '"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}\n\n',
        id="chat",
    ),
    pytest.param(
        RESPONSES,
        'event: error\ndata: {"type":"error","code":"server_error","message":"boom",'
        '"param":null,"sequence_number":0}\n\n',
        id="responses",
    ),
]


@pytest.mark.parametrize(("uri", "body"), STREAM_ERRORS)
def test_recorded_stream_errors_raise_transient_errors(tmp_path: Path, uri: str, body: str) -> None:
    request = {"model": "m", "max_tokens": 100, "stream": True, "input": "hi", "messages": []}
    headers = {"Content-Type": "text/event-stream; charset=utf-8"}
    path = _cassette(tmp_path, _interaction(uri, body=body, headers=headers, request=request))
    with ReplayServer(path) as server, closing(Providers()) as providers:
        check_interaction(server, server.interactions[0], uri, providers)
        server.assert_complete()
