"""Who may use the dashboard: a token, a Host it serves, and for a change, Origin and CSRF.

Any local process can reach loopback — an unsandboxed agent's command included — so a
loopback bind is not an access check. Every request needs the token the server printed
(as Jupyter does): given once as ``?token=``, it becomes an HttpOnly, SameSite=Strict
cookie and the address is cleaned of it. The ``Host`` header must name this server (a
DNS-rebinding page cannot borrow the browser's cookie for another name), and a POST
must come from this origin and carry the CSRF token derived from the session token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

COOKIE = "agentctl_dashboard"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Guard:
    """The token and the names this server answers to."""

    token: str
    host: str
    port: int

    @property
    def csrf(self) -> str:
        """The CSRF token of every form: derived from the session token, never stored."""
        return hmac.new(self.token.encode(), b"agentctl dashboard csrf", hashlib.sha256).hexdigest()

    def allowed_hosts(self) -> set[str]:
        """The ``Host`` values accepted; empty (any) when bound to every address."""
        if self.host in ("0.0.0.0", "::"):  # any address of this machine: the token decides
            return set()
        names = {f"[{self.host}]" if ":" in self.host else self.host}
        if _loopback(self.host):
            names |= set(LOOPBACK_NAMES)
        out = {f"{name}:{self.port}" for name in names}
        return out | names if self.port == 80 else out

    def host_ok(self, host_header: str | None) -> bool:
        allowed = self.allowed_hosts()
        return not allowed or (host_header or "").lower() in allowed

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate), self.token)

    def csrf_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate), self.csrf)

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """A POST's Origin (or, failing that, Referer) must be this server's own."""
        if not origin or not host_header:
            return False
        return origin.rstrip("/") == f"http://{host_header}" or origin.startswith(
            f"http://{host_header}/"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Gate:
    """ASGI middleware: Host, then the token (query once, then cookie), for every request."""

    def __init__(self, app: App, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.guard.host_ok(headers.get("host")):
            await _plain(send, 421, "this dashboard does not answer to that Host name")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.guard.token_ok(query.get("token")):  # the printed URL: set the cookie, clean up
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            location = scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.guard.token}; HttpOnly; SameSite=Strict; Path=/"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode()),
                        (b"set-cookie", cookie.encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if not self.guard.token_ok(_cookie(headers.get("cookie"))):
            await _plain(
                send,
                401,
                "open the address `agentctl dashboard` printed (it carries the token), "
                "or set AGENTCTL_DASHBOARD_TOKEN and add ?token=... to the address",
            )
            return
        await self.app(scope, receive, send)


def _cookie(header: str | None) -> str | None:
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _plain(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": (text + "\n").encode()})
