"""UTC timestamps as the run files spell them: ISO 8601, microseconds, a trailing "Z".

One format everywhere keeps files diffable and lets strings sort like the times they
hold. Naive datetimes are refused: a time without a zone would be a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    """The real clock (aware, UTC); everything that needs time takes a clock parameter."""
    return datetime.now(UTC)


def _require_aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone; pass an aware one")
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """``2026-11-25T21:24:33.482913Z``."""
    return _require_aware(dt).strftime(_FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 time with a zone (``Z`` or an offset) into an aware UTC datetime."""
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return dt.astimezone(UTC)


def compact_ts(dt: datetime) -> str:
    """``20261125T212433.482913Z``: sortable and safe in file names."""
    return _require_aware(dt).strftime("%Y%m%dT%H%M%S.%fZ")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(dt: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (for ``os.utime``)."""
    return (_require_aware(dt) - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of an ``st_mtime_ns``, truncated to the microsecond."""
    return _EPOCH + timedelta(microseconds=ns // 1000)
