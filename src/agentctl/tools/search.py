"""glob and grep: find files and text in the workspace without leaving it.

Walks never descend into ``.git`` or ``.agentctl`` and never follow a symlinked
directory; a symlinked file counts only when it resolves inside the workspace, and
every file grep reads is opened through the same ``O_NOFOLLOW`` chain as ``read``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from agentctl.tools import confine
from agentctl.tools.files import is_binary
from agentctl.tools.result import Output, ToolError

SKIP_DIRS = frozenset({".git", ".agentctl"})
MAX_GLOB = 1000
DEFAULT_MAX_RESULTS = 200
MAX_LINE = 500
MAX_FILE_BYTES = 20 * 1024 * 1024


def translate(pattern: str) -> re.Pattern[str]:
    """A glob (``*``, ``?``, ``[...]``, ``**`` for any depth) as an anchored regex.

    ``*`` also matches names that start with a dot: agents look for ``.github/*``.
    """
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise ToolError(f"glob pattern {pattern!r} must be relative and without '..'")
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if not segments:
        raise ToolError("empty glob pattern")
    out = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_segment(seg) + ("" if last else "/"))
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error as exc:
        raise ToolError(f"bad glob pattern {pattern!r}: {exc}") from exc


def _segment(seg: str) -> str:
    out = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = i + 1
            if seg[j : j + 1] == "!":
                j += 1
            if seg[j : j + 1] == "]":
                j += 1
            end = seg.find("]", j)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = seg[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def walk(root: str, base: confine.Target) -> Iterator[confine.Target]:
    """Regular files under ``base`` (or ``base`` itself), in a stable order."""
    if os.path.isfile(base.path):
        yield base
        return
    for current, dirs, files in os.walk(base.path, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            full = os.path.join(current, name)
            if os.path.islink(full):
                real = os.path.realpath(full)
                if not confine.inside(real, root) or not os.path.isfile(real):
                    continue
            rel = os.path.relpath(full, root)
            yield confine.Target(full, tuple(rel.split(os.sep)))


def glob(root: str, pattern: str, path: str | None = None) -> Output:
    """Files matching ``pattern`` below ``path``, relative to the workspace, sorted."""
    base = confine.resolve(root, path or ".")
    if not os.path.isdir(base.path):
        raise ToolError(f"{base.path} is not a directory", path=base.path)
    rx = translate(pattern)
    found = []
    for target in walk(root, base):
        below = os.path.relpath(target.path, base.path).replace(os.sep, "/")
        if rx.match(below):
            found.append(target.rel)
    found.sort()
    meta = {"path": base.path, "matches": len(found), "truncated": len(found) > MAX_GLOB}
    if not found:
        return Output(f"no files match {pattern!r} in {base.rel}", meta)
    text = "\n".join(found[:MAX_GLOB])
    if len(found) > MAX_GLOB:
        text += f"\n[first {MAX_GLOB} of {len(found)} files; narrow the pattern]"
    return Output(text, meta)


def grep(
    root: str,
    pattern: str,
    path: str | None = None,
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: int | None = None,
) -> Output:
    """``file:line: text`` for each line matching the regex ``pattern``."""
    base = confine.resolve(root, path or ".")
    limit = DEFAULT_MAX_RESULTS if max_results is None else max_results
    if limit < 1:
        raise ToolError(f"max_results must be 1 or more, not {limit}")
    try:
        rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ToolError(f"bad regex {pattern!r}: {exc}") from exc
    name_rx = translate(glob) if glob else None
    on_name = glob is not None and "/" not in glob
    hits: list[str] = []
    files = 0
    more = False
    for target in walk(root, base):
        if name_rx is not None:
            subject = target.parts[-1] if on_name else _below(target, base)
            if not name_rx.match(subject):
                continue
        data = _read(root, target)
        if data is None:
            continue
        files += 1
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not rx.search(line):
                continue
            if len(hits) == limit:
                more = True
                break
            shown = line if len(line) <= MAX_LINE else line[:MAX_LINE] + "…"
            hits.append(f"{target.rel}:{number}: {shown}")
        if more:
            break
    meta = {"path": base.path, "matches": len(hits), "files_searched": files, "truncated": more}
    if not hits:
        return Output(f"no matches for {pattern!r} in {base.rel}", meta)
    text = "\n".join(hits)
    if more:
        text += f"\n[stopped at {limit} matches; narrow the search or raise max_results]"
    return Output(text, meta)


def _below(target: confine.Target, base: confine.Target) -> str:
    return os.path.relpath(target.path, base.path).replace(os.sep, "/")


def _read(root: str, target: confine.Target) -> bytes | None:
    """The file's bytes, or None for binary, huge or vanished files and symlink tricks."""
    try:
        if os.path.getsize(target.path) > MAX_FILE_BYTES:
            return None
        checked = confine.resolve(root, target.path)
        data = confine.read_bytes(root, checked)
    except (OSError, ToolError):
        return None
    return None if is_binary(data) else data
