"""The HTTP/1.1 side of the fake model server: keep-alive, single writes, stalls, resets.

Kept apart from the scripting so the byte-level rules live in one place: every
body and every SSE event is one ``write`` on a ``TCP_NODELAY`` socket (split writes
cost ~44 ms each through Nagle plus delayed ACK), JSON bodies carry
``Content-Length`` and streams are chunked, so SDK clients keep one connection.
"""

from __future__ import annotations

import io
import select
import socket
import struct
import sys
import threading
import time
from contextlib import suppress
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from agentctl.testing.llm_wire import Event

POLL_SECONDS = 0.05
SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
REASONS = {529: "Site Overloaded"}


class Owner(Protocol):
    """What the handler calls back into (the ``LLMServer``)."""

    def _dispatch(self, handler: Handler) -> None: ...

    def _opened(self, sock: socket.socket) -> None: ...

    def _closed(self, sock: socket.socket) -> None: ...


class Server(ThreadingHTTPServer):
    """One thread per connection; a blocking accept loop that ``stop()`` wakes at once.

    (``serve_forever`` polls, so stopping it costs up to a poll interval per test.)
    """

    daemon_threads = True
    owner: Owner

    def accept_forever(self) -> None:
        while True:
            try:
                request, address = self.socket.accept()
            except OSError:
                return  # stop() shut the listening socket down
            self.process_request(request, address)

    def stop(self) -> None:
        with suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up is routine here (timeouts, drops); anything else is a bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every body and every SSE event is a single write."""

    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._closed(self.connection)

    def do_POST(self) -> None:
        self.server.owner._dispatch(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``server.requests`` instead."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        try:
            reason = REASONS.get(status) or HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}", f"date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_whole(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        names = {name.lower() for name, _ in headers}
        if "content-length" not in names and "transfer-encoding" not in names:
            headers = [*headers, ("content-length", str(len(body)))]
        self.wfile.write(self._head(status, headers) + body)

    def start_stream(self, headers: list[tuple[str, str]]) -> None:
        chunked = [*SSE_HEADERS, *headers, ("transfer-encoding", "chunked")]
        self.wfile.write(self._head(200, chunked))

    def send_event(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def send_stream(self, headers: list[tuple[str, str]], events: list[Event]) -> None:
        self.start_stream(headers)
        for event in events:
            self.send_event(event.data)
        self.end_stream()

    def wait_silent(self, seconds: float, closing: threading.Event) -> bool:
        """Say nothing for ``seconds``; False as soon as the client hangs up or we close."""
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLHUP | select.POLLERR)
        while not closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if poller.poll(min(remaining, POLL_SECONDS) * 1000):
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    return False
                if not peeked:
                    return False
                return not closing.wait(max(0.0, deadline - time.monotonic()))
        return False

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees a connection error, not an EOF."""
        self.close_connection = True
        sock = self.connection
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The file objects hold references that defer the real close; the handler
        # flushes wfile after us, so it gets a harmless sink instead.
        self.wfile.close()
        self.rfile.close()
        self.wfile = io.BytesIO()
        sock.close()
