"""``web_fetch``: one web page as text for a research agent, within bounds.

An agent that reads the web holds untrusted text (the "lethal trifecta" again), so
the tool does as little as it can: GET only, no cookies, no credentials, http and
https only, at most ``MAX_BYTES`` read, redirects followed by hand (five at most)
and each hop checked. Private, loopback and link-local addresses are refused unless
the role allows them (``web_fetch_private``, for intranet docs): a fetched page must
not turn the agent into a probe of the machine's own network. HTML becomes plain
text with the links kept, so the model reads content, not markup.

httpx2 is imported when a page is fetched, never at start-up.
"""

from __future__ import annotations

import ipaddress
import socket
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from agentctl.tools.result import Output, ToolError

MAX_BYTES = 2_000_000
MAX_REDIRECTS = 5
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")
SKIP = frozenset({"script", "style", "noscript", "svg", "template"})
BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "section", "article", "header", "footer", "pre", "table"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "hr", "title"}
)


def fetch(url: str, *, allow_private: bool = False, timeout: float = 20.0) -> Output:
    import httpx2

    headers = {"User-Agent": "agentctl-web-fetch/1", "Accept": "text/html, text/*;q=0.9, */*;q=0.1"}
    with httpx2.Client(timeout=timeout, follow_redirects=False, headers=headers) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check(url, allow_private)
            try:
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    body, cut_short = _read(response)
                    kind = response.headers.get("content-type", "").split(";")[0].strip()
                    status = response.status_code
                    encoding = response.encoding or "utf-8"
            except httpx2.HTTPError as exc:
                raise ToolError(f"web_fetch {url}: {type(exc).__name__}: {exc}") from None
            break
        else:
            raise ToolError(f"web_fetch {url}: more than {MAX_REDIRECTS} redirects")
    if kind and not kind.startswith(TEXT_TYPES):
        raise ToolError(f"web_fetch {url}: {kind} is not text; only pages and text are read")
    text = body.decode(encoding, errors="replace")
    if kind in ("text/html", "application/xhtml+xml") or (not kind and "<html" in text[:500]):
        text = html_to_text(text, url)
    meta: dict[str, Any] = {"status": status, "url": url, "truncated": cut_short}
    note = f"\n[stopped after {MAX_BYTES} bytes]" if cut_short else ""
    return Output(f"HTTP {status} {url}\n\n{text.strip()}{note}\n", meta, is_error=status >= 400)


def _check(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"web_fetch needs an http(s) URL with a host, not {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ToolError(f"web_fetch {url}: cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ToolError(
                f"web_fetch refused {url}: {parts.hostname} is a private or local address "
                f"({address}); a role may allow those with web_fetch_private = true"
            )


def _read(response: Any) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BYTES:
            return b"".join(chunks)[:MAX_BYTES], True
    return b"".join(chunks), False


def html_to_text(html: str, base: str = "") -> str:
    """The readable text of a page: blocks on their own lines, links as ``text <url>``."""
    parser = _TextParser(base)
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


class _TextParser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.out: list[str] = []
        self.skipping = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIP:
            self.skipping += 1
        elif tag in BLOCK:
            self.out.append("\n")
        if tag == "a":
            href = dict(attrs).get("href")
            self.href = urljoin(self.base, href) if href and not href.startswith("#") else None

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in BLOCK:
            self.out.append("\n")
        if tag == "a" and self.href:
            self.out.append(f" <{self.href}>")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)
