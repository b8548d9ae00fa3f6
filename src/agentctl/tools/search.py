"""glob and grep: find files and text in the workspace without leaving it.

Walks never descend into ``.git`` or ``.agentctl`` and never follow a symlinked
directory; a symlinked file counts only when it resolves inside the workspace, and
every file grep reads is opened through the same ``O_NOFOLLOW`` chain as ``read``.
Walks are iterative and stop at ``confine.MAX_DEPTH`` (saying what they skipped);
the toolbox runs both tools in a child process killed at a time limit (``isolate``).
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
    segments: list[str] = []
    for seg in pattern.split("/"):
        if seg not in ("", ".") and not (seg == "**" and segments[-1:] == ["**"]):
            segments.append(seg)  # `**/**` is `**`, without the extra backtracking
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


def walk(
    root: str, base: confine.Target, skipped: list[str] | None = None
) -> Iterator[confine.Target]:
    """Regular files under ``base`` (or ``base`` itself), in a stable order.

    Iterative, so a tree of any depth never exhausts the stack; folders deeper than
    ``confine.MAX_DEPTH`` below the workspace are not entered but named in ``skipped``.
    """
    if os.path.isfile(base.path):
        yield base
        return
    stack = [base.path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_dir:
                if not is_link and entry.name not in SKIP_DIRS:
                    subdirs.append(entry.path)
                continue
            if is_link:
                real = os.path.realpath(entry.path)
                if not confine.inside(real, root) or not os.path.isfile(real):
                    continue
            rel = os.path.relpath(entry.path, root)
            yield confine.Target(entry.path, tuple(rel.split(os.sep)))
        for sub in reversed(subdirs):
            if os.path.relpath(sub, root).count(os.sep) + 1 >= confine.MAX_DEPTH:
                if skipped is not None:
                    skipped.append(os.path.relpath(sub, root))
                continue
            stack.append(sub)


def _skipped_note(skipped: list[str]) -> str:
    if not skipped:
        return ""
    first = skipped[0].replace(os.sep, "/")
    shown = first if len(first) <= 120 else first[:60] + "…" + first[-50:]
    return (
        f"\n[skipped {len(skipped)} folder{'s' if len(skipped) != 1 else ''} deeper than "
        f"{confine.MAX_DEPTH} levels, e.g. {shown}]"
    )


def glob(root: str, pattern: str, path: str | None = None) -> Output:
    """Files matching ``pattern`` below ``path``, relative to the workspace, sorted."""
    base = confine.resolve(root, path or ".")
    if not os.path.isdir(base.path):
        raise ToolError(f"{base.path} is not a directory", path=base.path)
    rx = translate(pattern)
    found = []
    skipped: list[str] = []
    for target in walk(root, base, skipped):
        below = os.path.relpath(target.path, base.path).replace(os.sep, "/")
        if rx.match(below):
            found.append(target.rel)
    found.sort()
    meta = {
        "path": base.path,
        "matches": len(found),
        "truncated": len(found) > MAX_GLOB,
        "skipped_deep": len(skipped),
    }
    if not found:
        return Output(f"no files match {pattern!r} in {base.rel}{_skipped_note(skipped)}", meta)
    text = "\n".join(found[:MAX_GLOB])
    if len(found) > MAX_GLOB:
        text += f"\n[first {MAX_GLOB} of {len(found)} files; narrow the pattern]"
    return Output(text + _skipped_note(skipped), meta)


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
    skipped: list[str] = []
    for target in walk(root, base, skipped):
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
    meta = {
        "path": base.path,
        "matches": len(hits),
        "files_searched": files,
        "truncated": more,
        "skipped_deep": len(skipped),
    }
    note = _skipped_note(skipped)
    if not hits:
        return Output(f"no matches for {pattern!r} in {base.rel}{note}", meta)
    text = "\n".join(hits)
    if more:
        text += f"\n[stopped at {limit} matches; narrow the search or raise max_results]"
    return Output(text + note, meta)


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
