"""Replay recorded HTTP exchanges (VCR YAML cassettes) on 127.0.0.1.

``ReplayServer(cassette)`` answers each request with the next recorded response, in
recorded order, so a provider can be checked against bytes the real service sent.
Request bodies are not compared (our request may differ from the recorder's SDK);
the method and path are. A mismatch or a request past the end gets HTTP 500 and is
kept as a failure that ``assert_complete()`` raises, together with any recorded
interactions that were never requested::

    with ReplayServer(path) as server:
        provider = make_provider("m", Model(..., base_url=server.url))
        provider.complete(request)
        server.assert_complete()

The HTTP layer is ``LoopbackServer``'s (HTTP/1.1 keep-alive, ``TCP_NODELAY``); each
answer goes out in one write with the recorded status line and headers.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentctl.testing.llm_http import Handler
from agentctl.testing.loopback import LoopbackServer

__all__ = ["Recorded", "RecordedRequest", "RecordedResponse", "ReplayServer", "load_cassette"]

# Hop-by-hop or re-computed: never replayed as recorded.
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the parsed JSON body; None when empty; the text when not JSON


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # as served: decoded body, fixed Content-Length
    body: bytes  # decompressed

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request/response pair of a cassette."""

    request: RecordedRequest
    response: RecordedResponse


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _request_body(raw: Any) -> Any:
    text = _text(raw)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _decode(body: bytes, encoding: str | None) -> bytes:
    name = (encoding or "identity").strip().lower()
    if name in ("identity", ""):
        return body
    if name in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if name == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    raise ValueError(f"cannot replay a body with Content-Encoding {encoding!r}")


def _response(raw: Mapping[str, Any]) -> RecordedResponse:
    status = raw.get("status") or {}
    recorded: list[tuple[str, str]] = []
    for name, values in (raw.get("headers") or {}).items():
        for value in values if isinstance(values, list) else [values]:
            recorded.append((str(name), str(value)))
    encoding = next((v for k, v in recorded if k.lower() == "content-encoding"), None)
    body_field = (raw.get("body") or {}).get("string", b"")
    body = body_field if isinstance(body_field, bytes) else _text(body_field).encode()
    body = _decode(body, encoding)
    headers = [(k, v) for k, v in recorded if k.lower() not in _DROPPED]
    headers.append(("Content-Length", str(len(body))))
    return RecordedResponse(
        int(status.get("code", 200)), str(status.get("message", "")), tuple(headers), body
    )


def load_cassette(path: Path) -> list[Recorded]:
    """The interactions of a VCR/pytest-recording YAML cassette, bodies decoded."""
    # Imported here: PyYAML is a test dependency, and agentctl's start-up stays lean.
    import yaml  # type: ignore[import-untyped, unused-ignore]

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    out: list[Recorded] = []
    for item in data.get("interactions") or []:
        request = item["request"]
        split = urlsplit(str(request["uri"]))
        out.append(
            Recorded(
                RecordedRequest(
                    str(request.get("method", "GET")).upper(),
                    split.path or "/",
                    _request_body(request.get("body")),
                ),
                _response(item["response"]),
            )
        )
    return out


class _Handler(Handler):
    timeout = 30  # an idle keep-alive connection does not hold its thread forever
    do_HEAD = Handler.do_POST


class ReplayServer(LoopbackServer):
    """A local HTTP server that answers with a cassette's responses, in recorded order.

    ``url`` is Anthropic's base_url (the SDK adds ``/v1``), ``openai_url`` OpenAI's.
    """

    handler_class = _Handler

    def __init__(self, cassette: Path) -> None:
        super().__init__()
        self.cassette = cassette
        self._interactions = load_cassette(cassette)
        self._next = 0
        self._requests: list[Any] = []
        self._failures: list[str] = []

    # -- what tests read ---------------------------------------------------------------

    @property
    def openai_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: OpenAI's base_url."""
        return self.url + "/v1"

    @property
    def interactions(self) -> list[Recorded]:
        """The parsed cassette."""
        return list(self._interactions)

    @property
    def requests(self) -> list[Any]:
        """The bodies of the requests received so far (parsed JSON where they are JSON)."""
        with self._lock:
            return list(self._requests)

    @property
    def failures(self) -> list[str]:
        with self._lock:
            return list(self._failures)

    def assert_complete(self) -> None:
        """Raise AssertionError on a mismatched or extra request or an unused interaction."""
        with self._lock:
            problems = list(self._failures)
            left = len(self._interactions) - self._next
        if left:
            problems.append(
                f"{left} of {len(self._interactions)} recorded interactions were never requested"
            )
        if problems:
            raise AssertionError(f"{self.cassette.name}: " + "; ".join(problems))

    # -- serving -----------------------------------------------------------------------

    def _dispatch(self, handler: Handler) -> None:
        response = self.next(handler.command, handler.path, handler.read_body())
        head = [f"HTTP/1.1 {response.status} {response.reason or 'Status'}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if handler.command != "HEAD":
            payload += response.body
        handler.wfile.write(payload)  # one write: headers and body leave together

    def next(self, method: str, target: str, body: bytes) -> RecordedResponse:
        """The response for this request, or a 500 recorded as a failure."""
        path = urlsplit(target).path
        with self._lock:
            self._requests.append(_request_body(body))
            number = self._next
            if number >= len(self._interactions):
                problem = f"request {number + 1} ({method} {path}) is past the end of the cassette"
            else:
                expected = self._interactions[number].request
                if (expected.method, expected.path) == (method, path):
                    self._next += 1
                    return self._interactions[number].response
                problem = (
                    f"request {number + 1} is {method} {path}, "
                    f"but the cassette recorded {expected.method} {expected.path}"
                )
            self._failures.append(problem)
        body_out = json.dumps({"error": {"type": "replay_mismatch", "message": problem}}).encode()
        return RecordedResponse(
            500,
            "Replay Mismatch",
            (("Content-Type", "application/json"), ("Content-Length", str(len(body_out)))),
            body_out,
        )
