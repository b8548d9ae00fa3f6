"""What a red gate tells the dev agent: the command, its exit, the first failure, the summary.

The last few thousand characters of a run with a hundred failing tests are a wall of
one-line summaries that may start mid-line; a model fixes code from a traceback.
So the feedback names the command and its exit code, then the FIRST failure's block
as the tool prints it (pytest, unittest, go test, cargo test; for anything else the
first lines that look like an error), then the tool's summary line — each part
bounded by whole lines, head and tail, with a line that says what was cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FEEDBACK_LIMIT = 4000  # characters of the whole feedback (the engine keeps 6000)
BLOCK_LIMIT = 2800  # characters of the first failure's block
TAIL_LIMIT = 700  # characters of the output's end (its summary, as the tool says it)
ONE_LINE = 160  # characters of a reason on one line

_PYTEST_SECTION = re.compile(r"^=+ (FAILURES|ERRORS) =+$")
_PYTEST_HEADER = re.compile(r"^_{3,} .+ _{3,}$")
_PYTEST_RULE = re.compile(r"^=+( .* =+)?$")
_PYTEST_SUMMARY = re.compile(
    r"^=*\s*((\d+ (failed|passed|errors?|skipped|deselected|xfailed|xpassed|warnings?)"
    r"(, )?)+|no tests ran)( in [\d.]+s( \([\d:.]+\))?)?\s*=*$"
)
_UNITTEST_HEAD = re.compile(r"^(FAIL|ERROR|UNEXPECTED SUCCESS): \S")
_UNITTEST_RULE = re.compile(r"^(={20,}|-{20,})$")
_UNITTEST_SUMMARY = re.compile(r"^(FAILED \(.+\)|OK( \(.+\))?|Ran \d+ tests? in [\d.]+s)$")
_GO_FAIL = re.compile(r"^\s*--- FAIL: ")
_GO_TEST_LINE = re.compile(r"^(\s*)--- (FAIL|PASS|SKIP): ")
_GO_END = re.compile(r"^(=== RUN|FAIL$|FAIL\t|ok\s|PASS$|# )")
_GO_SUMMARY = re.compile(r"^(FAIL|ok)\s+\S+\s")
_CARGO_HEAD = re.compile(r"^---- \S.* stdout ----$")
_CARGO_END = re.compile(r"^(---- \S.* stdout ----|failures:|test result: )$|^test result: ")
_CARGO_SUMMARY = re.compile(r"^test result: ")
_ERRORISH = re.compile(
    r"(?i)(\berror\b|\berror\[|\bfail(ed|ure)?\b|\bexception\b|traceback|\bpanic|\bfatal\b"
    r"|\bassert|command not found|no such file)"
    r"|^\S+\.\w+:\d+:(\d+:)? \S"  # a compiler's path:line:col: message
)
_GENERIC_LINES = 30  # lines from the first error-looking line on


@dataclass(frozen=True, slots=True)
class Failure:
    """The parts of a red gate's output worth a model's attention."""

    tool: str  # "pytest", "unittest", "go test", "cargo test" or "" (guessed)
    first: str  # the first failure's block (whole lines), or "" when none was found
    summary: str  # the tool's summary line(s), or ""


def extract(output: str) -> Failure:
    """The first failure and the summary, recognised from the tool's own layout."""
    lines = output.splitlines()
    for tool, find in (
        ("pytest", _pytest),
        ("unittest", _unittest),
        ("go test", _go),
        ("cargo test", _cargo),
    ):
        first, summary = find(lines)
        if first:
            return Failure(tool, first, summary)
    summary = _last(lines, _PYTEST_SUMMARY) or _last(lines, _CARGO_SUMMARY)
    return Failure("", _generic(lines), summary)


def gate_feedback(
    command: str,
    exit_code: int,
    output: str,
    *,
    timed_out: bool = False,
    limit: int = FEEDBACK_LIMIT,
) -> str:
    """What goes back to the dev agent when ``command`` exits ``exit_code`` (non-zero)."""
    found = extract(output)
    ended = "timed out" if timed_out else f"exited {exit_code}"
    headline = f"`{_one(command, 300)}` {ended}"
    if found.summary:
        headline += f": {_one(found.summary, 300)}"
    parts = [headline]
    if found.first:
        label = f"First failure ({found.tool}):" if found.tool else "First lines that look wrong:"
        parts.append(f"{label}\n{bound(found.first, min(BLOCK_LIMIT, limit * 2 // 3))}")
    room = limit - sum(len(p) + 2 for p in parts) - 40
    if output.strip() and room > 200:
        # the end of the output: the tool's summary in its own words, and what came last
        parts.append(f"End of the output:\n{tail(output, min(room, TAIL_LIMIT))}")
    return bound("\n\n".join(parts), limit)


def bound(text: str, limit: int) -> str:
    """``text`` in at most about ``limit`` characters: whole lines, head and tail, cut said."""
    text = text.strip("\n")
    if len(text) <= limit:
        return text
    lines = [_clip(line, limit // 2 - 20) for line in text.splitlines()]
    half = (limit - 60) // 2
    head: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > half:
            break
        head.append(line)
        used += len(line) + 1
    rest = lines[len(head) :]
    if not rest:  # only long lines were clipped
        return "\n".join(head)
    tail_: list[str] = []
    used = 0
    for line in reversed(rest):
        if used + len(line) + 1 > half or len(tail_) == len(rest) - 1:
            break
        tail_.insert(0, line)
        used += len(line) + 1
    cut = rest[: len(rest) - len(tail_)]
    chars = sum(len(line) + 1 for line in cut)
    note = f"[… {len(cut)} line{'s' if len(cut) != 1 else ''} ({chars} characters) cut …]"
    return "\n".join([*head, note, *tail_])


def tail(text: str, limit: int) -> str:
    """The last whole lines of ``text`` in about ``limit`` characters, with what was cut."""
    lines = text.strip("\n").splitlines()
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        clipped = _clip(line, limit - 20)
        if used + len(clipped) + 1 > limit:
            break
        kept.insert(0, clipped)
        used += len(clipped) + 1
    cut = len(lines) - len(kept)
    return "\n".join(([f"[… {cut} earlier lines cut …]"] if cut else []) + kept)


def one_line(text: str | None, limit: int = ONE_LINE) -> str:
    """A reason on one line: newlines folded, runs of space squeezed, bounded."""
    return _one(text or "", limit)


def _one(text: str, limit: int) -> str:
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1].rstrip() + "…"


def _clip(line: str, limit: int) -> str:
    limit = max(limit, 40)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _last(lines: list[str], pattern: re.Pattern[str]) -> str:
    for line in reversed(lines):
        if pattern.match(line.strip()):
            return line.strip()
    return ""


def _block(lines: list[str], start: int, end: re.Pattern[str]) -> str:
    """From ``lines[start]`` to the line before the next match of ``end`` (blank ends trimmed)."""
    stop = start + 1
    while stop < len(lines) and not end.match(lines[stop]):
        stop += 1
    return "\n".join(lines[start:stop]).strip("\n")


def _pytest(lines: list[str]) -> tuple[str, str]:
    for i, line in enumerate(lines):
        if not _PYTEST_SECTION.match(line):
            continue
        for j in range(i + 1, len(lines)):
            if _PYTEST_HEADER.match(lines[j]):
                end = re.compile(f"{_PYTEST_HEADER.pattern}|{_PYTEST_RULE.pattern}")
                return _block(lines, j, end), _last(lines, _PYTEST_SUMMARY)
            if _PYTEST_RULE.match(lines[j]):
                break
    return "", ""


def _unittest(lines: list[str]) -> tuple[str, str]:
    for i, line in enumerate(lines):
        if _UNITTEST_HEAD.match(line) and i > 0 and _UNITTEST_RULE.match(lines[i - 1]):
            stop = i + 1
            if stop < len(lines) and _UNITTEST_RULE.match(lines[stop]):
                stop += 1  # the dashes under the test's name
            while stop < len(lines) and not _UNITTEST_RULE.match(lines[stop]):
                stop += 1
            summary = " · ".join(
                line.strip() for line in lines if _UNITTEST_SUMMARY.match(line.strip())
            )
            return "\n".join(lines[i:stop]).strip("\n"), summary
    return "", ""


def _go(lines: list[str]) -> tuple[str, str]:
    """The first ``--- FAIL`` with its subtests and output (a panic's stack included)."""
    for i, line in enumerate(lines):
        if not _GO_FAIL.match(line):
            continue
        indent = len(line) - len(line.lstrip())
        stop = i + 1
        while stop < len(lines) and not _GO_END.match(lines[stop]):
            other = _GO_TEST_LINE.match(lines[stop])
            if other and len(other.group(1)) <= indent:
                break  # the next test at this level (a deeper one is a subtest of this one)
            stop += 1
        summary = "; ".join(line.strip() for line in lines if _GO_SUMMARY.match(line))
        return "\n".join(lines[i:stop]).strip("\n"), summary
    return "", ""


def _cargo(lines: list[str]) -> tuple[str, str]:
    for i, line in enumerate(lines):
        if _CARGO_HEAD.match(line):
            return _block(lines, i, _CARGO_END), _last(lines, _CARGO_SUMMARY)
    return "", ""


def _generic(lines: list[str]) -> str:
    for i, line in enumerate(lines):
        if _ERRORISH.search(line):
            return "\n".join(lines[i : i + _GENERIC_LINES]).strip("\n")
    return ""
