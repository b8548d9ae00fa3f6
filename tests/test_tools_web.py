"""``web_fetch`` against a real HTTP server on 127.0.0.1: text out, bounds kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentctl.tools import web
from agentctl.tools.toolbox import Toolbox
from agentctl.tools.web import html_to_text

PAGE = b"""<!doctype html><html><head><title>Release notes</title>
<style>body { color: red }</style><script>alert("hidden")</script></head>
<body><h1>Version 2</h1><p>Adds <b>retries</b> and a
<a href="/docs/retry">retry guide</a>.</p><ul><li>one</li><li>two</li></ul></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/page": (200, {"content-type": "text/html; charset=utf-8"}, PAGE),
            "/moved": (302, {"location": "/page"}, b""),
            "/loop": (302, {"location": "/loop"}, b""),
            "/image": (200, {"content-type": "image/png"}, b"\x89PNG"),
            "/json": (200, {"content-type": "application/json"}, b'{"ok": true}'),
            "/missing": (404, {"content-type": "text/plain"}, b"no such page"),
            "/huge": (200, {"content-type": "text/plain"}, b"x" * (web.MAX_BYTES + 10)),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in {**headers, "content-length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(repo: Path, url: str, private: bool = True) -> Any:
    return Toolbox(repo, ["web_fetch"], web_private=private).run("web_fetch", {"url": url})


def test_a_page_comes_back_as_text_with_its_links(repo: Path, site: str) -> None:
    result = fetch(repo, f"{site}/moved")
    assert not result.is_error
    assert result.content.startswith(f"HTTP 200 {site}/page\n")
    assert "Release notes" in result.content and "Version 2" in result.content
    assert f"retry guide <{site}/docs/retry>" in result.content
    assert "alert" not in result.content and "color: red" not in result.content
    assert "\none\ntwo" in result.content.replace("\n\n", "\n")


def test_json_is_text_and_an_error_status_is_an_error(repo: Path, site: str) -> None:
    assert '{"ok": true}' in fetch(repo, f"{site}/json").content
    missing = fetch(repo, f"{site}/missing")
    assert missing.is_error and "HTTP 404" in missing.content and "no such page" in missing.content


def test_local_addresses_are_refused_unless_the_role_allows_them(repo: Path, site: str) -> None:
    refused = fetch(repo, f"{site}/page", private=False)
    assert refused.is_error
    assert "private or local address (127.0.0.1)" in refused.content
    assert "web_fetch_private = true" in refused.content
    assert fetch(repo, "http://localhost:9/x", private=False).is_error


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/loop", "more than 5 redirects"), ("/image", "image/png is not text")],
)
def test_redirect_loops_and_binaries_are_refused(
    repo: Path, site: str, path: str, expected: str
) -> None:
    result = fetch(repo, f"{site}{path}")
    assert result.is_error and expected in result.content


def test_only_http_urls(repo: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "http:///nohost"):
        result = fetch(repo, url)
        assert result.is_error and "needs an http(s) URL" in result.content


def test_a_huge_page_is_read_only_up_to_the_limit(repo: Path, site: str) -> None:
    result = fetch(repo, f"{site}/huge")
    assert f"[stopped after {web.MAX_BYTES} bytes]" in result.full
    assert result.meta["truncated"] is True
    assert len(result.full) < web.MAX_BYTES + 200


def test_html_to_text_keeps_blocks_apart() -> None:
    text = html_to_text("<div>a</div><div>b <a href='x.html'>c</a></div>", "https://h/d/")
    assert text == "a\n\nb c <https://h/d/x.html>"
