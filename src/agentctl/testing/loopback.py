"""A server on 127.0.0.1 in a background thread: the lifecycle every fake here shares.

Subclasses answer requests in ``_dispatch``; this class binds a free port, serves
one thread per connection, and on ``close`` shuts the listener and every open
connection at once, so a test never waits on a poll interval or a hung client.
"""

from __future__ import annotations

import socket
import threading
from abc import ABC, abstractmethod
from contextlib import suppress
from types import TracebackType
from typing import Self

from agentctl.testing.llm_http import Handler, Server


class LoopbackServer(ABC):
    """Use as a context manager: ``with Sub() as server: ... server.url ...``."""

    handler_class: type[Handler] = Handler  # a subclass may add methods (HEAD) or a timeout

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._open: set[socket.socket] = set()
        self._connections = 0
        self._closing = threading.Event()
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        httpd = Server(("127.0.0.1", 0), self.handler_class)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.accept_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; open connections are shut so their threads end now."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._closing.set()
        httpd.stop()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use it in a `with` block")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (keep-alive tests expect 1)."""
        with self._lock:
            return self._connections

    @abstractmethod
    def _dispatch(self, handler: Handler) -> None:
        """Answer one request (each subclass speaks its own protocol)."""

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
