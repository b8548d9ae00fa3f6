"""``HEARTBEAT.md``: the checklist of periodic duties the orchestrator hands its model.

A duty is a list item with a cadence: ``- every 30m: Check that CI on main is green``
or ``- daily 09:00: Summarise yesterday's merges`` (UTC). Items in HTML comments, in
fenced code, or under a heading that mentions "example" are inactive, so the file
can teach its own syntax and a fresh workspace ticks idle. Any other list item must
be a well-formed duty: a duty that silently never runs is worse than an error.

``due`` is pure (the caller passes the clock and the last-run times), and answers
with a set of duties, not of slots: a duty missed for hours fires once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal

from agentctl.config.convert import parse_duration
from agentctl.errors import ConfigError

Cadence = Literal["every", "daily"]

FORMS_HINT = (
    'write a duty as "- every 30m: what to do" (every 90s, 30m, 2h or 1d) '
    'or "- daily 09:00: what to do" (once a day, UTC)'
)

_BULLET = re.compile(r"^( {0,3})[-*+][ \t]+(?:\[[ xX]\][ \t]+)?(.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
# "every 30m [ci]: text" / "daily 09:00: text": the argument stops at a space, a
# bracket or the colon that ends the header (a time keeps its own colon).
_DUTY = re.compile(
    r"^(?P<word>[A-Za-z]+)[ \t]+(?P<arg>\d{1,2}:\d\d|[^\s:\[\]]+)[ \t]*"
    r"(?:\[(?P<id>[^\]]*)\][ \t]*)?:(?P<text>.*)$"
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d\d)$")
_ID = re.compile(r"^[\w][\w.-]*$")
_SLUG_MAX = 60


@dataclass(frozen=True, slots=True)
class Duty:
    """One active item; ``id`` keys its last-run time, so rewording with ``[id]`` keeps it."""

    id: str
    cadence: Cadence
    every: timedelta | None  # cadence "every"
    at: time | None  # cadence "daily": a naive time of day, read as UTC
    text: str
    line: int


def slug(text: str) -> str:
    """``Check that CI on main is green`` → ``check-that-ci-on-main-is-green``."""
    words = re.sub(r"[\W_]+", "-", text.lower()).strip("-")
    if len(words) > _SLUG_MAX:
        cut = words[:_SLUG_MAX]
        words = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return words


def parse_heartbeat(text: str, source: str = "HEARTBEAT.md") -> list[Duty]:
    """The active duties of a HEARTBEAT.md, in file order; ``ConfigError`` at a bad line."""
    duties: list[Duty] = []
    seen: dict[str, int] = {}
    current: _Item | None = None  # the duty whose indented continuation lines follow
    in_comment = False
    fence: str | None = None
    example_level: int | None = None  # inside a heading section that holds examples
    paragraph: str | None = None  # the text line a setext underline would make a heading

    def heading(level: int, title: str) -> None:
        nonlocal example_level
        if example_level is not None and level <= example_level:
            example_level = None
        if example_level is None and "example" in title.lower():
            example_level = level

    def finish() -> None:
        nonlocal current
        if current is not None:
            duty = current.duty()
            if duty.id in seen:
                raise ConfigError(
                    f"duty id {duty.id!r} is used twice (first at line {seen[duty.id]})",
                    source=source,
                    line=duty.line,
                    hint='give one of them its own id: "- every 30m [my-id]: ..."',
                )
            seen[duty.id] = duty.line
            duties.append(duty)
            current = None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.expandtabs(4)
        if fence is not None:
            match = _FENCE.match(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        line, in_comment = _uncomment(line, in_comment)
        if not line.strip():
            paragraph = None
            continue
        indent = len(line) - len(line.lstrip(" "))
        if current is not None and indent > current.indent:
            current.more.append(line.strip())
            continue
        finish()
        match = _FENCE.match(line)
        if match:
            fence = match.group(1)
            paragraph = None
            continue
        match = _HEADING.match(line)
        if match:
            heading(len(match.group(1)), match.group(2) or "")
            paragraph = None
            continue
        match = _SETEXT.match(line)
        if match and paragraph is not None:
            heading(1 if match.group(1)[0] == "=" else 2, paragraph)
            paragraph = None
            continue
        if _BREAK.match(line):
            paragraph = None
            continue
        match = _BULLET.match(line)
        if match is None:
            paragraph = line.strip()
            continue
        paragraph = None
        if example_level is None:
            current = _Item(len(match.group(1)), number, match.group(2).strip(), source)
            current.duty()  # report a malformed header at its own line, before the rest
    finish()
    return duties


def _uncomment(line: str, in_comment: bool) -> tuple[str, bool]:
    """``line`` with HTML comments blanked (columns kept) and whether one stays open."""
    if in_comment:
        end = line.find("-->")
        if end < 0:
            return "", True
        line = " " * (end + 3) + line[end + 3 :]
    while (start := line.find("<!--")) >= 0:
        end = line.find("-->", start + 4)
        if end < 0:
            return line[:start], True
        line = line[:start] + " " * (end + 3 - start) + line[end + 3 :]
    return line, False


@dataclass(slots=True)
class _Item:
    """A list item being read: its header line and any indented lines under it."""

    indent: int
    line: int
    body: str
    source: str
    more: list[str] = field(default_factory=list)

    def duty(self) -> Duty:
        match = _DUTY.match(self.body)
        if match is None:
            raise self._error(f"cannot read {self.body!r} as a duty with a cadence")
        word = match.group("word").lower()
        arg = match.group("arg")
        every: timedelta | None = None
        at: time | None = None
        if word == "every":
            seconds = parse_duration(arg)
            if seconds is None or seconds <= 0:
                raise self._error(f"cannot read {arg!r} as a duration in {self.body!r}")
            every = timedelta(seconds=seconds)
            cadence: Cadence = "every"
        elif word == "daily":
            clock = _CLOCK.match(arg)
            if clock is None or int(clock.group(1)) > 23 or int(clock.group(2)) > 59:
                raise self._error(f"cannot read {arg!r} as a time of day (HH:MM) in {self.body!r}")
            at = time(int(clock.group(1)), int(clock.group(2)))
            cadence = "daily"
        else:
            raise self._error(f"unknown cadence {match.group('word')!r} in {self.body!r}")
        first = match.group("text").strip()
        if not first:
            raise self._error(f"the duty {self.body!r} says when but not what to do")
        explicit = match.group("id")
        if explicit is not None:
            duty_id = explicit.strip()
            if not _ID.match(duty_id):
                raise self._error(
                    f"duty id [{explicit}] must be letters, digits, '-', '_' or '.'",
                    hint='e.g. "- every 30m [ci-green]: ..."',
                )
        else:
            duty_id = slug(first)
            if not duty_id:
                raise self._error(
                    f"cannot make an id from {first!r}",
                    hint='give it one: "- every 30m [my-id]: ..."',
                )
        text = "\n".join([first, *self.more])
        return Duty(duty_id, cadence, every, at, text, self.line)

    def _error(self, message: str, hint: str = FORMS_HINT) -> ConfigError:
        return ConfigError(message, source=self.source, line=self.line, hint=hint)


def due(duties: Iterable[Duty], last_run: Mapping[str, datetime], now: datetime) -> list[Duty]:
    """The duties to run at ``now`` (aware), given when each last ran (by duty id).

    ``every N``: never run, or N has passed since. ``daily HH:MM``: the latest
    HH:MM at or before ``now`` is after the last run; a duty never run waits for
    today's HH:MM rather than firing for yesterday's.
    """
    now = now.astimezone(UTC)
    found = []
    for duty in duties:
        last = last_run.get(duty.id)
        if duty.every is not None:
            if last is None or now - last >= duty.every:
                found.append(duty)
        elif duty.at is not None:
            today = datetime.combine(now.date(), duty.at, tzinfo=UTC)
            if last is None:
                if now >= today:
                    found.append(duty)
                continue
            slot = today if now >= today else today - timedelta(days=1)
            if slot > last:
                found.append(duty)
    return found


HEARTBEAT_TEMPLATE = """\
# Heartbeat

Periodic duties for the orchestrator. On each tick it hands the duties whose time
has come to its model (an idle tick costs nothing), and keeps when each last ran in
`.agentctl/orchestrator/state.json`.

A duty is a list item with a cadence: `every` a duration (90s, 30m, 2h, 1d) since
it last ran, or `daily` at a time of day in UTC. Lines indented under a duty belong
to it. Put `[id]` after the cadence to keep a duty's history when you reword it.
A duty missed while nothing ran fires once, not once per missed slot.

Everything inside an HTML comment, and under a heading that mentions examples, is
inactive. To start, copy an example out of the comment below, or write your own
duties under a heading of your own, such as `## Duties`.

<!--
## Examples

- every 30m: Check that CI on main is green; if it is red, open a ticket with the failing test.
- daily 09:00: Summarise yesterday's merges, failures and spend for the main session.
- every 1d [stale-prs]: Comment on pull requests with no activity for three days.
  Ask the author what blocks them; do not close anything.
-->
"""
