"""Protected paths: changes that a person must merge, never the merge queue on its own.

An agent that can edit agentctl's configuration (``agentctl.toml``, ``roles/``,
``pipelines/``), the orchestrator's checklist, the instruction and settings files
other agents read (``AGENTS.md``, ``CLAUDE.md``, ``.claude/``, ``.mcp.json``,
``.codex/``) or CI definitions could widen its own permissions the moment its
change merges. So a branch's whole change against its merge base is checked here;
whatever touches such a path (added, modified, deleted, renamed from or to, or a
symlink that points into one) waits for a person.

Matching is case-insensitive (a case-insensitive file system makes ``Roles/`` the
same folder), instruction files count at any depth (agents read nested ones too),
and configuration counts both at the repository root and at the workspace root
when agentctl lives in a subfolder. ``[project] protected_paths`` adds globs
(``*``, ``?``, ``[...]``, ``**`` across folders), relative to the same roots; as in
``.gitignore``, a glob that names a folder protects everything under it and one
without a slash (``*.pem``) matches at any depth.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.errors import GitError

if TYPE_CHECKING:
    from agentctl.config import Config

# Relative to the repository root and to the workspace root.
ROOTED_FILES = ("agentctl.toml", "HEARTBEAT.md")
ROOTED_DIRS = ("roles", "pipelines", ".github/workflows", ".github/actions")  # actions: CI code too
# Any path with one of these components, at any depth.
ANYWHERE = (
    ".agentctl",
    "AGENTS.md",
    "AGENTS.override.md",
    "CLAUDE.md",
    "CLAUDE.local.md",
    ".claude",
    ".mcp.json",
    ".codex",
)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
SYMLINK = "120000"
NEEDS_PERSON = "this change edits protected paths ({paths}); a person must merge it"


@dataclass(frozen=True, slots=True)
class Rules:
    """What is protected: ``roots`` are folder prefixes ("" or "sub/"), all case-folded."""

    roots: tuple[str, ...] = ("",)
    files: tuple[str, ...] = ROOTED_FILES
    globs: tuple[str, ...] = ()

    def protects(self, path: str) -> bool:
        """Whether the repository-relative POSIX ``path`` is a protected place (or in one)."""
        folded = path.strip("/").casefold()
        parts = folded.split("/")
        if any(part in _ANYWHERE for part in parts):
            return True
        for root in self.roots:
            if not folded.startswith(root):
                continue
            rel = folded[len(root) :]
            if rel in (f.casefold() for f in self.files):
                return True
            if any(rel == d or rel.startswith(d + "/") for d in _ROOTED_DIRS):
                return True
            if any(_matches(g, rel) for g in self.globs):
                return True
        return False

    def holds_protected(self, path: str) -> bool:
        """Whether the folder ``path`` is, or contains, a rooted protected place."""
        folded = path.strip("/").casefold()
        if folded in ("", "."):
            return True
        for root in self.roots:
            if root.startswith(folded + "/"):
                return True
            rel = folded[len(root) :] if folded.startswith(root) else None
            if rel is None:
                continue
            places = [*(f.casefold() for f in self.files), *_ROOTED_DIRS]
            if any(p.startswith(rel + "/") for p in places):
                return True
        return self.protects(path)


_ANYWHERE = frozenset(name.casefold() for name in ANYWHERE)
_ROOTED_DIRS = tuple(d.casefold() for d in ROOTED_DIRS)


def rules_for(config: Config) -> Rules:
    """The built-in places, the configured heartbeat file and ``[project] protected_paths``."""
    workspace = config.workspace
    roots = [""]
    if workspace.git_root is not None and workspace.root != workspace.git_root:
        try:
            rel = workspace.root.resolve().relative_to(workspace.git_root.resolve()).as_posix()
        except ValueError:
            rel = ""
        if rel not in ("", "."):
            roots.append(rel.casefold().strip("/") + "/")
    heartbeat = Path(config.settings.orchestrator.heartbeat_file)
    if heartbeat.is_absolute():  # the file the orchestrator reads, relative to the workspace
        try:
            heartbeat = heartbeat.resolve().relative_to(workspace.root.resolve())
        except ValueError:
            heartbeat = Path("HEARTBEAT.md")  # outside the workspace: no merge reaches it
    return Rules(
        roots=tuple(roots),
        files=(*ROOTED_FILES, posixpath.normpath(heartbeat.as_posix())),
        globs=tuple(config.settings.project.protected_paths),
    )


def protected_changes(
    repo: Path,
    base: str,
    head: str = "HEAD",
    *,
    rules: Rules | None = None,
    worktree: bool = False,
) -> list[str]:
    """The protected paths that ``head``'s change since its merge base with ``base`` touches.

    ``repo`` is the top folder of the repository (or of a worktree of it: then
    ``worktree=True`` adds its uncommitted changes, untracked files included). A
    symlink whose target is a protected place, or leaves the repository, is named
    as ``link -> target``. Sorted, without repeats.
    """
    rules = rules or Rules()
    found: set[str] = set()
    base_sha = _merge_base(repo, base, head)
    raw = _git(repo, "diff", "--raw", "-z", "--no-renames", "--no-abbrev", base_sha, head, "--")
    for path, mode, sha in _parse_raw(raw):
        found |= _check(rules, path, mode, partial(_git, repo, "cat-file", "blob", sha))
    if worktree:
        raw = _git(repo, "diff", "--raw", "-z", "--no-renames", "--no-abbrev", "HEAD", "--")
        untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard")
        paths = [p for p, _, _ in _parse_raw(raw)] + [p for p in untracked.split("\0") if p]
        for path in paths:
            on_disk = repo / path
            mode = SYMLINK if on_disk.is_symlink() else "100644"
            found |= _check(rules, path, mode, partial(os.readlink, on_disk))
    return sorted(found)


def describe(paths: Sequence[str], limit: int = 8) -> str:
    """The failure a person reads: which paths, and that they must merge it."""
    more = f", … {len(paths) - limit} more" if len(paths) > limit else ""
    shown = ", ".join(paths[:limit]) + more
    return NEEDS_PERSON.format(paths=shown)


# -- internals ----------------------------------------------------------------------------


def _check(rules: Rules, path: str, mode: str, target: Callable[[], str]) -> set[str]:
    found = set()
    if rules.protects(path):
        found.add(path)
    if mode == SYMLINK:
        link = target().strip("\n")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        escapes = link.startswith("/") or resolved == ".." or resolved.startswith("../")
        if escapes or rules.holds_protected(resolved):
            found.add(f"{path} -> {link}")
    return found


def _parse_raw(raw: str) -> Iterable[tuple[str, str, str]]:
    """``(path, new mode, new blob)`` from ``git diff --raw -z`` (no renames: one path each)."""
    fields = raw.split("\0")
    i = 0
    while i + 1 < len(fields):
        meta, path = fields[i], fields[i + 1]
        i += 2
        if not meta.startswith(":"):
            continue
        _, new_mode, _, new_sha, *_ = meta[1:].split(" ")
        yield path, new_mode, new_sha


def _merge_base(repo: Path, base: str, head: str) -> str:
    try:
        return _git(repo, "merge-base", base, head).strip()
    except GitError:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")  # a real error
        return EMPTY_TREE  # unrelated histories: all of the head is its change


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "core.quotepath=off", *args],
        cwd=repo,
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])} failed in {repo}: {said}")
    return done.stdout.decode("utf-8", errors="surrogateescape")


def _matches(glob: str, rel: str) -> bool:
    """Like .gitignore: a glob naming a folder protects its contents; one without a
    slash matches a name at any depth (``*.pem``)."""
    parts = rel.split("/")
    pattern = _glob(glob)
    if "/" not in glob.strip().strip("/"):
        return any(pattern.fullmatch(part) for part in parts)
    return any(pattern.fullmatch("/".join(parts[: i + 1])) for i in range(len(parts)))


_CACHE: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    """A case-folded glob as a regex: ``**`` crosses folders, ``*`` and ``?`` do not."""
    cached = _CACHE.get(pattern)
    if cached is not None:
        return cached
    text = pattern.replace("\\", "/").strip().strip("/").casefold()
    text = text.removeprefix("./")
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and text.find("]", i + 2) != -1:
            end = text.find("]", i + 2)
            body = text[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\\[^])", r"\\\1", body[1:] if negate else body)
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    compiled = re.compile("".join(out), re.DOTALL)
    _CACHE[pattern] = compiled
    return compiled
