"""Find the line of a key path in TOML text, so every config error can say file:line.

``tomllib`` keeps no positions, so this is a small line scanner that knows just
enough TOML: ``[table]`` and ``[[array]]`` headers, dotted and quoted keys,
inline tables, arrays of inline tables spread over lines, and multi-line strings
(skipped, so a prompt that contains ``key = value`` text is not misread). It only
runs when there is an error to report.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_BARE = r"[A-Za-z0-9_-]+"
_KEY = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=\s*")
_KEY_PART = re.compile(_KEY)


def _split_key(dotted: str) -> list[str]:
    parts = []
    for match in _KEY_PART.finditer(dotted):
        token = match.group(0)
        if token[0] in "\"'":
            token = token[1:-1]
        parts.append(token)
    return parts


class _Scanner:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.found: dict[Path, int] = {}
        self.array_counts: dict[Path, int] = {}

    def note(self, path: Path, line: int) -> None:
        for i in range(1, len(path) + 1):
            self.found.setdefault(path[:i], line)

    def run(self) -> dict[Path, int]:
        table: Path = ()
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            header = _HEADER.match(line)
            if header and not _ASSIGN.match(line):
                path: Path = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    index = self.array_counts.get(path, -1) + 1
                    self.array_counts[path] = index
                    path = (*path, index)
                table = path
                self.note(table, i + 1)
                i += 1
                continue
            i = self.scan_value_line(table, i)
        return self.found

    def scan_value_line(self, table: Path, i: int) -> int:
        """Scan ``key = value`` at line i (value may span lines); return the next line."""
        match = _ASSIGN.match(self.lines[i])
        if not match:
            return i + 1
        path = (*table, *_split_key(match.group(1)))
        self.note(path, i + 1)
        return self.scan_value(path, i, match.end())

    def scan_value(self, path: Path, i: int, col: int) -> int:
        """Walk a value from (line i, col), noting keys of inline tables and array items."""
        stack: list[tuple[Path, int]] = []  # (path of the container, next array index)
        current = path
        expect_key = False
        expect_item = False  # an array item starts at the next value character
        while i < len(self.lines):
            line = self.lines[i]
            while col < len(line):
                ch = line[col]
                if ch == "#":
                    break
                if expect_item and not ch.isspace() and ch not in ",]":
                    self.note(current, i + 1)
                    expect_item = False
                if line.startswith(('"""', "'''"), col):
                    i, col = self.skip_multiline(i, col + 3, line[col : col + 3])
                    line = self.lines[i] if i < len(self.lines) else ""
                    continue
                if ch in "\"'":
                    col = self.skip_string(line, col)
                    continue
                if ch == "[":
                    stack.append((current, 0))
                    self.note(current, i + 1)
                    current = (*current, 0)
                    expect_item = True
                elif ch == "{":
                    stack.append((current, -1))
                    expect_key = True
                elif ch == "," and stack:
                    parent, index = stack[-1]
                    if index >= 0:
                        stack[-1] = (parent, index + 1)
                        current = (*parent, index + 1)
                        expect_item = True
                    else:
                        current = parent
                        expect_key = True
                elif ch in "]}" and stack:
                    current, _ = stack.pop()
                    if stack and stack[-1][1] < 0:
                        current = stack[-1][0]
                elif expect_key and not ch.isspace():
                    match = _ASSIGN.match(line, col)
                    if match:
                        container = stack[-1][0] if stack else current
                        current = (*container, *_split_key(match.group(1)))
                        self.note(current, i + 1)
                        col = match.end()
                        expect_key = False
                        continue
                    expect_key = False
                col += 1
            i += 1
            col = 0
            if not stack:
                return i
        return i

    def skip_string(self, line: str, col: int) -> int:
        quote = line[col]
        col += 1
        while col < len(line):
            if line[col] == "\\" and quote == '"':
                col += 2
                continue
            if line[col] == quote:
                return col + 1
            col += 1
        return col

    def skip_multiline(self, i: int, col: int, delimiter: str) -> tuple[int, int]:
        while i < len(self.lines):
            end = self.lines[i].find(delimiter, col)
            if end >= 0:
                return i, end + 3
            i += 1
            col = 0
        return i, 0


def key_lines(text: str) -> dict[Path, int]:
    """Every key path in ``text`` (and each prefix) → the 1-based line where it first appears."""
    return _Scanner(text).run()


def line_of(text: str, path: Path) -> int | None:
    """The line of ``path``, or of its longest prefix present in ``text``; None if neither."""
    found = key_lines(text)
    for end in range(len(path), 0, -1):
        line = found.get(path[:end])
        if line is not None:
            return line
    return None
