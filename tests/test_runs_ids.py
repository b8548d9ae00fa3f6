"""Run ids sort like the times they carry, name their kind, and refuse unknown kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentctl.runs import KINDS, new_run_id, parse_run_id

T0 = datetime(2026, 11, 25, 21, 24, 33, 482913, tzinfo=UTC)


def test_example_shape() -> None:
    run_id = new_run_id("agent", T0)
    assert run_id.startswith("20261125T212433.482913Z-agent-")
    assert len(run_id.rsplit("-", 1)[1]) == 6


def test_lexicographic_order_is_time_order() -> None:
    # Steps from a microsecond to years, so every digit position changes at some point.
    steps = [
        timedelta(microseconds=1),
        timedelta(seconds=7),
        timedelta(hours=5),
        timedelta(days=40),
    ]
    times = []
    now = T0
    for i in range(400):
        now += steps[i % len(steps)]
        times.append(now)
    ids = [new_run_id(KINDS[i % len(KINDS)], t) for i, t in enumerate(times)]
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)


def test_same_microsecond_ids_differ() -> None:
    assert len({new_run_id("step", T0) for _ in range(50)}) == 50


@pytest.mark.parametrize("kind", KINDS)
def test_kind_round_trips(kind: str) -> None:
    parsed = parse_run_id(new_run_id(kind, T0))
    assert parsed is not None
    created, parsed_kind, rand = parsed
    assert created == T0
    assert parsed_kind == kind
    assert len(rand) == 6
    int(rand, 16)


def test_non_utc_time_is_converted() -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    assert new_run_id("chat", local).startswith("20261125T212433.482913Z-")


@pytest.mark.parametrize("kind", ["", "Agent", "worker", "agent-x"])
def test_bad_kind_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="unknown run kind"):
        new_run_id(kind, T0)


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        new_run_id("agent", T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    "name",
    [
        "",
        "runs",
        ".20261125T212433.482913Z-agent-7f3a9c.tmp.12",
        "20261125T212433.482913Z-agent-7f3a9",
        "20261125T212433.482913Z-agent-7F3A9C",
        "20261125T212433Z-agent-7f3a9c",
        "20261399T212433.482913Z-agent-7f3a9c",  # month 13
        "20261125T212433.482913Z-agent-7f3a9c.corrupt",
    ],
)
def test_parse_rejects_non_ids(name: str) -> None:
    assert parse_run_id(name) is None
