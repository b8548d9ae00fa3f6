"""``agentctl dashboard``: the team at a glance in a browser, live, from the state folder.

Starlette and uvicorn serve server-rendered pages (``app``) read from the run
directories, the ledger and the orchestrator's files (``views``), with charts as inline
SVG (``charts``), a live journal stream over Server-Sent Events, and four actions that
call the same core functions as the CLI (``actions``). Everything is behind a token,
a Host check, and Origin and CSRF checks for changes (``security``). Its dependencies
are the ``dashboard`` extra; nothing else in agentctl imports this package.
"""

from __future__ import annotations

import os
import socket
import webbrowser
from collections.abc import Callable

from agentctl.commands.dashboard.security import Guard, new_token
from agentctl.config import Config
from agentctl.errors import UsageError

TOKEN_ENV = "AGENTCTL_DASHBOARD_TOKEN"
INSTALL_HINT = 'pip install "agentctl[dashboard]"'


def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    open_browser: bool = False,
    say: Callable[[str], object] = print,
) -> None:
    """Serve the dashboard until interrupted; says the address to open first."""
    try:
        import uvicorn  # lazy: the dashboard extra (uvicorn), only for this command

        from agentctl.commands.dashboard.app import make_app  # lazy: Starlette and Jinja2
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs {exc.name or 'its dependencies'}", hint=INSTALL_HINT
        ) from exc
    token = token or os.environ.get(TOKEN_ENV) or new_token()
    listener = _bind(host, port)  # refused here, in one line, before an address is printed
    port = listener.getsockname()[1]
    guard = Guard(token=token, host=host, port=port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown}:{port}/?token={token}"
    say(f"agentctl dashboard: {address}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        say("  bound beyond loopback: anyone who can reach it still needs the token")
    if open_browser:
        webbrowser.open(address)
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(config, guard), log_level="warning", access_log=False, lifespan="off"
        )
    )
    server.run(sockets=[listener])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        listener.close()
        raise UsageError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (or --port 0 for any free one)",
        ) from exc
    return listener
