"""git's smart HTTP protocol for the fake forges: ``git http-backend`` run as a CGI.

Tests push and fetch with the real git client, so the wire (pkt-lines, protocol v2,
gzip and chunked request bodies, ``Expect: 100-continue``) is git's own rather than
an imitation. What this module adds is what a forge adds in front of it: Basic auth
on every request (GitHub's answer to a missing or wrong password is a 401 with
``WWW-Authenticate: Basic realm="GitHub"``, which makes git ask its credential
helpers), and a log of requests that never holds the credentials.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.testing.llm_http import Handler

Headers = list[tuple[str, str]]

# Request headers never handed to the CGI: the credentials, and the framing we undo.
_HIDDEN = {"authorization", "proxy-authorization", "content-length", "transfer-encoding"}


@dataclass(frozen=True, slots=True)
class GitRequest:
    """One git HTTP request as the server saw it (never the credentials)."""

    method: str
    path: str  # path and query string, e.g. /o/r.git/info/refs?service=git-upload-pack
    authorised: bool
    status: int = 0
    chunked: bool = False  # the request body came with Transfer-Encoding: chunked
    encoding: str = ""  # its Content-Encoding (git gzips large fetch negotiations)


class GitHttpBackend:
    """Serves ``root/<owner>/<name>.git`` over smart HTTP to clients holding ``token``."""

    def __init__(self, root: Path, token: str, *, realm: str = "GitHub") -> None:
        self.root = Path(root)
        self._token = token
        self.realm = realm
        self._lock = threading.Lock()
        self._requests: list[GitRequest] = []

    @property
    def requests(self) -> list[GitRequest]:
        with self._lock:
            return list(self._requests)

    def handle(self, handler: Handler) -> None:
        """Answer one request: 401 without the token, else whatever http-backend says."""
        user, authorised = self._credentials(handler.headers.get("authorization"))
        chunked = "chunked" in handler.headers.get("transfer-encoding", "").lower()
        body = _read_request_body(handler)  # always, so a keep-alive connection stays usable
        if not authorised:
            status = 401
            handler.send_whole(
                status,
                [
                    ("www-authenticate", f'Basic realm="{self.realm}"'),
                    ("content-type", "text/plain; charset=utf-8"),
                ],
                b"Invalid username or token. Password authentication is not supported.\n",
            )
        else:
            # A client may send the token as the user name too; it must not reach the CGI.
            remote_user = user if user and user != self._token else "git"
            status, headers, out = self._run_cgi(handler, body, remote_user)
            handler.send_whole(status, headers, out)
        with self._lock:
            self._requests.append(
                GitRequest(
                    handler.command,
                    handler.path,
                    authorised,
                    status,
                    chunked,
                    handler.headers.get("content-encoding", ""),
                )
            )

    # -- internals ---------------------------------------------------------------

    def _credentials(self, header: str | None) -> tuple[str | None, bool]:
        """(user, whether the password is the token) from a Basic ``Authorization`` header."""
        if not header:
            return None, False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        user, _, password = decoded.partition(":")
        return user, password == self._token

    def _run_cgi(self, handler: Handler, body: bytes, user: str) -> tuple[int, Headers, bytes]:
        path, _, query = handler.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,  # http-backend enables receive-pack for an authenticated user
            "REMOTE_ADDR": str(handler.client_address[0]),
        }
        for name, value in handler.headers.items():
            if name.lower() in _HIDDEN:
                continue
            # CONTENT_ENCODING (gzip), GIT_PROTOCOL (version=2) and the rest, CGI-style.
            env["HTTP_" + name.upper().replace("-", "_")] = value
        done = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
        )
        if done.returncode != 0 and not done.stdout:
            message = done.stderr.decode("utf-8", "replace") or "git http-backend failed\n"
            return 500, [("content-type", "text/plain; charset=utf-8")], message.encode()
        return _parse_cgi(done.stdout)


def _read_request_body(handler: Handler) -> bytes:
    """The request body, whether sent with ``Content-Length`` or chunked (large pushes)."""
    if "chunked" not in handler.headers.get("transfer-encoding", "").lower():
        return handler.read_body()
    parts: list[bytes] = []
    rfile = handler.rfile
    while True:
        line = rfile.readline()
        if not line:
            raise ConnectionError("request body ended inside a chunk header")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline()  # the CRLF after each chunk


def _parse_cgi(output: bytes) -> tuple[int, Headers, bytes]:
    """Split CGI output into status, headers and body (``Status:`` defaults to 200)."""
    crlf, lf = output.find(b"\r\n\r\n"), output.find(b"\n\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        head, body = output[:crlf], output[crlf + 4 :]
    elif lf != -1:
        head, body = output[:lf], output[lf + 2 :]
    else:
        head, body = output, b""
    status = 200
    headers: Headers = []
    for raw in head.decode("latin-1").splitlines():
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name.lower() not in ("content-length", "transfer-encoding", "connection"):
            headers.append((name.lower(), value))
    return status, headers, body
