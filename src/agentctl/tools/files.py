"""read, write and edit: file tools that only ever touch checked, confined paths.

Every path goes through ``confine.resolve`` first and is then opened through an
``O_NOFOLLOW`` chain; writes are atomic so a killed agent never leaves half a file.
"""

from __future__ import annotations

from agentctl.tools import confine
from agentctl.tools.result import Output, ToolError

BINARY_SNIFF = 8192
DEFAULT_LIMIT = 2000


def is_binary(data: bytes) -> bool:
    """A NUL byte near the start: what git and grep take to mean binary."""
    return b"\x00" in data[:BINARY_SNIFF]


def read(root: str, path: str, offset: int | None = None, limit: int | None = None) -> Output:
    """Lines of a text file numbered like ``cat -n``, from line ``offset`` (1-based)."""
    target = confine.resolve(root, path)
    start = 1 if offset is None else offset
    count = DEFAULT_LIMIT if limit is None else limit
    if start < 1:
        raise ToolError(f"offset must be 1 or more, not {start}", path=target.path)
    if count < 1:
        raise ToolError(f"limit must be 1 or more, not {count}", path=target.path)
    data = confine.read_bytes(root, target)
    if is_binary(data):
        raise ToolError(f"{target.path} is a binary file", path=target.path)
    lines = data.decode("utf-8", errors="replace").splitlines()
    meta = {"path": target.path, "lines": len(lines)}
    if not lines:
        return Output(f"({target.rel} is empty)", meta)
    if start > len(lines):
        raise ToolError(
            f"{target.path} has {len(lines)} lines; offset {start} is past the end",
            path=target.path,
        )
    end = min(start - 1 + count, len(lines))
    body = "\n".join(f"{n:>6}\t{lines[n - 1]}" for n in range(start, end + 1))
    if start > 1 or end < len(lines):
        body += f"\n[lines {start}-{end} of {len(lines)}; use offset and limit for more]"
    return Output(body, meta)


def write(root: str, path: str, content: str) -> Output:
    """Create or replace a whole file (parents made as needed)."""
    target = confine.resolve(root, path, write=True)
    data = content.encode("utf-8")
    created = confine.write_atomic(root, target, data)
    verb = "created" if created else "replaced"
    return Output(
        f"{verb} {target.rel} ({len(data)} bytes written)",
        {"path": target.path, "created": created, "bytes": len(data)},
    )


def edit(root: str, path: str, old: str, new: str, replace_all: bool = False) -> Output:
    """Replace exact text; ``old`` must be unique unless ``replace_all``, so edits land once."""
    target = confine.resolve(root, path, write=True)
    if not old:
        raise ToolError("old must not be empty (use write to create a file)", path=target.path)
    if old == new:
        raise ToolError("old and new are the same: nothing to change", path=target.path)
    data = confine.read_bytes(root, target)
    if is_binary(data):
        raise ToolError(f"{target.path} is a binary file", path=target.path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{target.path} is not valid UTF-8: {exc}", path=target.path) from exc
    found = text.count(old)
    if found == 0:
        raise ToolError(f"old text not found in {target.path}", path=target.path)
    if found > 1 and not replace_all:
        raise ToolError(
            f"old text occurs {found} times in {target.path}: give more context or set replace_all",
            path=target.path,
            occurrences=found,
        )
    text = text.replace(old, new) if replace_all else text.replace(old, new, 1)
    confine.write_atomic(root, target, text.encode("utf-8"))
    done = found if replace_all else 1
    return Output(
        f"replaced {done} occurrence{'s' if done != 1 else ''} in {target.rel}",
        {"path": target.path, "replacements": done},
    )
