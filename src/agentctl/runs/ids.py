"""Run ids: ``20261125T212433.482913Z-agent-7f3a9c``.

Sorting ids as strings sorts runs by creation time, so a directory listing is already
a timeline; the kind is readable at a glance and the random tail keeps two runs made
in the same microsecond apart (and is short enough to type as a reference).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from functools import cache

from agentctl.runs.timefmt import compact_ts

KINDS = ("agent", "pipeline", "chat", "orchestrator", "step", "ask")

# Any lowercase word is accepted as a kind when parsing, so runs of a kind added by a
# newer agentctl still show up in listings instead of vanishing.
# Hours, minutes and seconds out of range are refused here, as the clock would refuse
# them, so ``run_ids_in`` need only check the day.
_RUN_ID = re.compile(
    r"^(\d{4})(\d\d)(\d\d)T([01]\d|2[0-3])([0-5]\d)([0-5]\d)\.(\d{6})Z"
    r"-([a-z][a-z0-9_]*)-([0-9a-f]{6})$"
)


def new_run_id(kind: str, now: datetime) -> str:
    """A fresh id for a run of ``kind`` created at ``now`` (aware)."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"{compact_ts(now)}-{kind}-{os.urandom(3).hex()}"


def parse_run_id(run_id: str) -> tuple[datetime, str, str] | None:
    """``(created, kind, random)`` for a run id, or None for any other name."""
    match = _RUN_ID.match(run_id)
    if match is None:
        return None
    year, month, day, hour, minute, second, micro, kind, rand = match.groups()
    try:
        created = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), int(micro), UTC
        )
    except ValueError:  # e.g. month 13
        return None
    return created, kind, rand


# The same, within a listing joined by "/" (which no file name holds): one pass in C
# over 20,000 names.
_RUN_ID_IN_LISTING = re.compile(
    r"(?<![^/])\d{8}T(?:[01]\d|2[0-3])[0-5]\d[0-5]\d\.\d{6}Z-[a-z][a-z0-9_]*-[0-9a-f]{6}(?![^/])"
)


def run_ids_in(names: list[str], kind: str | None = None) -> list[str]:
    """The run ids (of ``kind`` if given) among ``names``, as ``parse_run_id`` judges them."""
    found: list[str] = _RUN_ID_IN_LISTING.findall("/".join(names))
    if kind is not None:
        found = [name for name in found if name[24:-7] == kind]  # between "Z-" and "-hex"
    if not all(_real_day(day) for day in {name[:8] for name in found}):
        found = [name for name in found if _real_day(name[:8])]
    return found


@cache
def _real_day(digits: str) -> bool:
    """``YYYYMMDD`` names a day of the calendar (not month 13, not 30 February)."""
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return True
