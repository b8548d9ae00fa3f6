"""HEARTBEAT.md: parsing duties, and when each is due, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from agentctl.errors import ConfigError
from agentctl.orchestrator.heartbeat import (
    HEARTBEAT_TEMPLATE,
    Duty,
    due,
    parse_heartbeat,
    slug,
)

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def one(text: str) -> Duty:
    (duty,) = parse_heartbeat(text)
    return duty


# -- parsing --------------------------------------------------------------------------


def test_every_and_daily_items_become_duties() -> None:
    duties = parse_heartbeat(
        "# Heartbeat\n"
        "\n"
        "- every 30m: Check that CI on main is green\n"
        "* daily 09:00: Summarise yesterday's merges\n"
        "- [ ] every 90s [ping]: Ping the staging server\n"
        "- every 1d: Tidy: old branches\n"
    )
    assert duties == [
        Duty(
            "check-that-ci-on-main-is-green",
            "every",
            timedelta(minutes=30),
            None,
            "Check that CI on main is green",
            3,
        ),
        Duty("summarise-yesterday-s-merges", "daily", None, time(9, 0), duties[1].text, 4),
        Duty("ping", "every", timedelta(seconds=90), None, "Ping the staging server", 5),
        Duty("tidy-old-branches", "every", timedelta(days=1), None, "Tidy: old branches", 6),
    ]
    assert duties[1].text == "Summarise yesterday's merges"


def test_indented_lines_belong_to_the_duty_above() -> None:
    duty = one(
        "- every 2h: Review open PRs\n  - skip drafts\n\n  and be brief\nSome prose after.\n"
    )
    assert duty.text == "Review open PRs\n- skip drafts\nand be brief"
    assert duty.id == "review-open-prs"


def test_template_has_no_active_duty() -> None:
    assert parse_heartbeat(HEARTBEAT_TEMPLATE) == []
    # ... but its examples are real duties once they leave the comment.
    uncommented = HEARTBEAT_TEMPLATE.replace("<!--", "").replace("-->", "")
    assert parse_heartbeat(uncommented.replace("## Examples", "## Duties"))


def test_comments_examples_and_code_are_inactive() -> None:
    text = (
        "# Heartbeat\n"
        "<!-- - every 1m: one-line comment -->\n"
        "<!--\n"
        "- every 1m: inside a comment\n"
        "-->\n"
        "- every 5m: active <!-- with a note -->\n"
        "## Examples\n"
        "- every 1m: an example\n"
        "### More examples, nested\n"
        "- every soon: malformed but only an example\n"
        "### Still under the examples\n"
        "- every 1m: nested example section\n"
        "## Duties\n"
        "- daily 07:30: active again\n"
        "Example duties\n"
        "--------------\n"
        "- every 1m: under a setext example heading\n"
        "```\n"
        "- every 1m: in fenced code\n"
        "```\n"
        "* * *\n"
    )
    duties = parse_heartbeat(text)
    assert [(d.text, d.line) for d in duties] == [("active", 6), ("active again", 14)]


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("- every soon: x", "'soon' as a duration"),
        ("- every 0m: x", "'0m' as a duration"),
        ("- daily 9am: x", "'9am' as a time of day"),
        ("- daily 24:00: x", "'24:00' as a time of day"),
        ("- hourly 5m: x", "unknown cadence 'hourly'"),
        ("- every 30m:", "says when but not what"),
        ("- Check the CI", "as a duty with a cadence"),
        ("- every 30m [bad id]: x", "duty id [bad id]"),
    ],
)
def test_malformed_active_items_name_source_and_line(item: str, says: str) -> None:
    text = "# Heartbeat\n\n- every 1h: fine\n" + item + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_heartbeat(text, source="ws/HEARTBEAT.md")
    error = caught.value
    assert (error.source, error.line) == ("ws/HEARTBEAT.md", 4)
    assert says in str(error)
    assert str(error).startswith("ws/HEARTBEAT.md:4: ")
    if "id" not in says:
        assert "every 30m" in str(error) and "daily 09:00" in str(error)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"HEARTBEAT.md:3: duty id 'check-ci'.*line 1"):
        parse_heartbeat("- every 1h: Check CI\n- every 2h [other]: x\n- daily 10:00: check CI!\n")
    with pytest.raises(ConfigError, match=r"duty id 'ci' is used twice"):
        parse_heartbeat("- every 1h [ci]: one\n- every 2h [ci]: two\n")
    assert len(parse_heartbeat("- every 1h [ci]: Check CI\n- every 2h: Check CI\n")) == 2


def test_slug_is_short_and_stable() -> None:
    assert slug("Check that CI on main is green!") == "check-that-ci-on-main-is-green"
    long = slug("word " * 40)
    assert len(long) <= 60 and not long.endswith("-")


# -- due ------------------------------------------------------------------------------


def simulate(duty: Duty, start: datetime, minutes: int) -> list[int]:
    """Check once a minute; each time the duty is due, record it as run then."""
    last: dict[str, datetime] = {}
    fired = []
    for minute in range(minutes + 1):
        now = start + timedelta(minutes=minute)
        if due([duty], last, now):
            fired.append(minute)
            last[duty.id] = now
    return fired


def test_every_30m_runs_at_0_30_60_and_not_between() -> None:
    duty = one("- every 30m: Check CI\n")
    assert simulate(duty, T0, 89) == [0, 30, 60]


def test_daily_runs_once_a_day() -> None:
    duty = one("- daily 09:00: Summarise merges\n")
    day = datetime(2026, 11, 25, tzinfo=UTC)
    last: dict[str, datetime] = {}

    def check(at: datetime) -> bool:
        fired = bool(due([duty], last, at))
        if fired:
            last[duty.id] = at
        return fired

    assert not check(day.replace(hour=8, minute=59))  # never run, before 09:00
    assert check(day.replace(hour=9))
    assert not check(day.replace(hour=12))
    assert not check(day + timedelta(days=1, hours=8))
    assert check(day + timedelta(days=1, hours=9, minutes=1))
    assert not check(day + timedelta(days=1, hours=23, minutes=59))
    # minute by minute over three days: once each day
    runs = simulate(duty, day + timedelta(days=2), 3 * 24 * 60 - 1)
    assert runs == [9 * 60, 24 * 60 + 9 * 60, 48 * 60 + 9 * 60]


def test_a_missed_duty_fires_once() -> None:
    every, daily = parse_heartbeat("- every 30m: a\n- daily 09:00: b\n")
    last = {every.id: T0, daily.id: T0 - timedelta(days=4)}  # daily missed four days
    later = T0 + timedelta(hours=5)  # 11:00: ten 30m slots and four 09:00s went by
    assert due([every, daily], last, later) == [every, daily]
    last = {every.id: later, daily.id: later}
    assert due([every, daily], last, later + timedelta(minutes=1)) == []


def test_due_keeps_file_order_and_reads_other_zones_as_utc() -> None:
    duties = parse_heartbeat("- daily 09:00: b\n- every 1h: a\n")
    cet = datetime(2026, 11, 25, 11, 0, tzinfo=timezone(timedelta(hours=1)))  # 10:00 UTC
    assert due(duties, {}, cet) == duties
    assert due(duties, {}, cet - timedelta(hours=2)) == [duties[1]]  # 08:00 UTC
