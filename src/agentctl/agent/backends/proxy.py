"""The metering proxy: a CLI backend's one way to a model, priced and capped like our own.

A small HTTP server on 127.0.0.1, one per agent run, that Claude Code
(``ANTHROPIC_BASE_URL``) or Codex (a ``model_providers`` entry) is pointed at. The
CLI and every command it runs know only a per-run token; the real key stays in this
process (``keystore``). For each model call the proxy

1. checks the token, picks the role's model the request names (else the role's first:
   a CLI's side-task model is billed as the role's), and caps the request's output
   tokens at that model's ``max_tokens`` so the upper bound below holds;
2. reserves that upper bound against every cap (``cost/reserve.py``, the reservation
   agentctl's own calls make) or answers an API error the CLI does not retry, and
   tells the backend (which stops the CLI if it goes on);
3. takes every known secret out of the request (``redact``), forwards it to the
   model's real ``base_url`` with the real key and streams the answer back unchanged;
4. settles the real cost from the usage on the wire (``wire.Tap``) into the ledger
   and journals the call (``llm.call``), like ``cost/metered.Meter``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingUnixStreamServer
from typing import Any

from agentctl.agent.backends.wire import CALL_PATHS, FREE_PATHS, Tap, error_body
from agentctl.config.schema import Model
from agentctl.cost.metered import Meter
from agentctl.cost.pricing import upper_bound
from agentctl.cost.reserve import Hold
from agentctl.llm import resolve_key
from agentctl.tools.warden import short_path

DEFAULT_BASE = {"messages": "https://api.anthropic.com", "responses": "https://api.openai.com/v1"}
# Request headers the CLI's SDK sets that the model's API needs (never its key).
PASS_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta", "accept", "content-type")
# Answer headers the CLI reads (ids, retry advice, rate limits).
KEEP_HEADERS = ("content-type", "request-id", "x-request-id", "retry-after", "retry-after-ms")


class MeteringProxy:
    """Serve one run's CLI on 127.0.0.1; ``url`` once started, ``close`` when it ends."""

    def __init__(
        self,
        *,
        meter: Meter,
        chain: Sequence[str],
        api: str,
        redact: Callable[[str], str],
        on_refused: Callable[[str], object],
        max_calls: int | None = None,
    ) -> None:
        self.meter = meter
        self.chain = list(chain)
        self.api = api
        self.redact = redact
        self.on_refused = on_refused
        self.token = "agentctl-proxy-" + secrets.token_urlsafe(24)
        self.calls = 0  # priced
        self.max_calls = max_calls
        self._started = 0
        self._current = 0  # index in chain of the model calls go to
        self.refused: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._unix: Any = None
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> MeteringProxy:
        import httpx2  # lazy: the HTTP client, for the runs of a CLI backend only

        self._client = httpx2.Client()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def serve_unix(self, path: str) -> None:
        """Serve the same proxy on a Unix socket too (bound into a CLI's sandbox)."""
        proxy = self

        class Handler(_Handler):
            owner = proxy

            def address_string(self) -> str:
                return "unix"

        server = ThreadingUnixStreamServer(short_path(path), Handler)
        server.daemon_threads = True
        self._unix = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self._unix is not None:
            self._unix.shutdown()
            self._unix.server_close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._client is not None:
            self._client.close()

    # -- one request ----------------------------------------------------------------

    def model_for(self, requested: object) -> tuple[str, Model]:
        """The role's model the request names (by id or agentctl name), else its first."""
        models = self.meter.config.models
        for name in self.chain:
            if requested in (name, models[name].name):
                return name, models[name]
        return self.chain[0], models[self.chain[0]]

    def timeout(self, model: Model) -> Any:
        import httpx2  # lazy: imported by start() already

        return httpx2.Timeout(model.timeout, connect=10.0, read=model.idle_timeout)

    def current(self) -> str:
        """The model calls go to: the role's first, or the one a failure moved on to."""
        with self._lock:
            return self.chain[self._current]

    def after(self, name: str) -> str | None:
        """The chain's model after ``name``, if there is one."""
        index = self.chain.index(name)
        return self.chain[index + 1] if index + 1 < len(self.chain) else None

    def switch(self, name: str, to: str, why: str) -> None:
        """Move on from ``name`` (for this and every later call), as agentctl's loop does."""
        with self._lock:
            self._current = max(self._current, self.chain.index(to))
        self.meter.run.journal.append(
            "model.switch", durable=True, to=to, reason=self.redact(f"{name}: {why}")
        )

    def upstream(self, model: Model, path: str) -> str:
        base = (model.base_url or DEFAULT_BASE[self.api]).rstrip("/")
        if self.api == "responses":  # the provider base ends in /v1, as the CLI's does
            path = path.removeprefix("/v1")
        return base + path

    def headers(self, name: str, model: Model, incoming: Any) -> dict[str, str]:
        out = {h: incoming[h] for h in PASS_HEADERS if incoming.get(h)}
        out["accept-encoding"] = "identity"  # the usage is read off the bytes as they pass
        key = resolve_key(name, model)
        if key:
            if self.api == "messages":
                out["x-api-key"] = key
            else:
                out["authorization"] = f"Bearer {key}"
        return out

    def reserve(self, name: str, model: Model, body: dict[str, Any], size: int) -> Hold | None:
        """Hold the most this request can cost, or refuse it (``refused`` says why)."""
        limit_key = "max_tokens" if self.api == "messages" else "max_output_tokens"
        asked = body.get(limit_key)
        out_tokens = min(asked, model.max_tokens) if isinstance(asked, int) else model.max_tokens
        body[limit_key] = out_tokens
        body["model"] = model.name
        amount = upper_bound(size // 3 + 16, out_tokens, model.price)
        meter = self.meter
        with self._lock:
            self._started += 1
            over = self.max_calls is not None and self._started > self.max_calls
        if over:
            with self._lock:
                self.refused = f"max_turns reached: {self.max_calls} model calls"
            self.on_refused(self.refused)
            return None
        hold, decision = meter.hold(amount, name)
        if hold is None:
            with self._lock:
                self.refused = f"budget: {decision.reason}"
            self.on_refused(self.refused)
        return hold

    def settle(self, name: str, model: Model, hold: Hold, tap: Tap, seconds: float) -> None:
        """Price an answer into the ledger and the journal; an unpriced one frees its hold."""
        meter = self.meter
        if tap.usage is None:
            meter.reservations.release(hold)
            return
        entry = meter.reservations.settle(
            hold,
            run=meter.run.load(),
            model_name=name,
            model=model,
            usage=tap.usage,
            model_id=tap.model_id,
            request_id=tap.request_id,
        )
        with self._lock:
            self.calls += 1
        meter.run.journal.append(
            "llm.call",
            durable=True,
            model=name,
            model_id=tap.model_id,
            request_id=tap.request_id,
            stop_reason=tap.stop_reason,
            usage=tap.usage.to_json(),
            cost_usd=str(entry.cost),
            tool_calls=tap.tool_calls,
            seconds=round(seconds, 3),
            via="proxy",
        )


class _Handler(BaseHTTPRequestHandler):
    owner: MeteringProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # the journal has the calls; nothing on stderr per request

    def do_GET(self) -> None:
        self._send_json(404, error_body(self.owner.api, f"not served here: {self.path}"))

    def do_POST(self) -> None:
        proxy = self.owner
        path = self.path.split("?", 1)[0]
        if not self._authorised():
            self._send_json(401, error_body(proxy.api, "unknown token", "authentication_error"))
            return
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size)
        if self.headers.get("content-encoding", "identity") != "identity":
            message = "agentctl proxy: compressed request bodies are not supported"
            self._send_json(415, error_body(proxy.api, message))
            return
        if path in FREE_PATHS[proxy.api]:
            body = _load(raw)
            name, model = proxy.model_for(body.get("model"))
            body["model"] = model.name
            self._forward(name, model, path, body, None)
            return
        if path not in CALL_PATHS[proxy.api]:
            self._send_json(404, error_body(proxy.api, f"not served here: {path}"))
            return
        body = _load(raw)
        if proxy.refused is not None:
            self._send_json(400, error_body(proxy.api, f"agentctl: not sent: {proxy.refused}"))
            return
        self._call(path, body, len(raw))

    def _call(self, path: str, body: dict[str, Any], size: int) -> None:
        """Reserve, forward, settle; on to the chain's next model while the current one
        cannot be reached or fails on its side (5xx) and nothing reached the CLI yet."""
        proxy = self.owner
        name = proxy.current()
        while True:
            model = proxy.meter.config.models[name]
            hold = proxy.reserve(name, model, body, size)
            if hold is None:
                message = f"agentctl: not sent: {proxy.refused}"
                self._send_json(400, error_body(proxy.api, message))
                return
            after = proxy.after(name)
            failed = self._forward(name, model, path, body, hold, may_fail_over=after is not None)
            if failed is None or after is None:
                return
            proxy.switch(name, after, failed)
            name = after

    def _authorised(self) -> bool:
        token = self.owner.token
        bearer = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") == token or bearer == f"Bearer {token}"

    def _forward(
        self,
        name: str,
        model: Model,
        path: str,
        body: dict[str, Any],
        hold: Hold | None,
        *,
        may_fail_over: bool = False,
    ) -> str | None:
        """Send ``body`` to ``model`` and relay its answer; None once answered. With
        ``may_fail_over``, why it failed (nothing sent to the CLI, hold released)."""
        proxy = self.owner
        content = proxy.redact(json.dumps(body, ensure_ascii=False)).encode()
        tap = Tap(proxy.api)
        started = time.monotonic()
        self._answered = False
        failed: str | None = None
        try:
            with proxy._client.stream(
                "POST",
                proxy.upstream(model, path),
                content=content,
                headers=proxy.headers(name, model, self.headers),
                # The model's own limits: a stream silent for idle_timeout is dropped.
                timeout=proxy.timeout(model),
            ) as answer:
                if may_fail_over and answer.status_code >= 500:
                    failed = f"HTTP {answer.status_code}"
                else:
                    self._relay(answer, tap)
        except Exception as exc:  # the model's endpoint: unreachable, reset, timed out
            if not self._answered:
                failed = f"{model.base_url or 'the API'}: {exc}"
                if not may_fail_over:
                    message = f"agentctl proxy: {failed}"
                    self._send_json(502, error_body(proxy.api, message, "api_error"))
        finally:
            if hold is not None:
                proxy.settle(name, model, hold, tap, time.monotonic() - started)
        return failed if may_fail_over and not self._answered else None

    def _relay(self, answer: Any, tap: Tap) -> None:
        self._answered = True
        self.send_response(answer.status_code)
        for header in KEEP_HEADERS:
            if header in answer.headers:
                self.send_header(header, answer.headers[header])
        streaming = "text/event-stream" in answer.headers.get("content-type", "")
        if not streaming:
            whole = answer.read()
            if answer.status_code < 400:
                tap.body(whole)
            self.send_header("content-length", str(len(whole)))
            self.end_headers()
            self.wfile.write(whole)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for chunk in answer.iter_raw():
            if not chunk:
                continue
            tap.feed(chunk)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, status: int, data: dict[str, Any]) -> None:
        self._answered = True
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _load(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
