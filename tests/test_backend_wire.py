"""The metering proxy prices real answers: every recorded Anthropic and Responses answer
of the conformance cassettes, fed to ``wire.Tap`` in small pieces, gives the usage the
answer carries (parsed independently, by the provider conformance test's own reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.agent.backends.wire import Tap
from agentctl.testing.replay import load_cassette
from tests.test_conformance_providers import APIS, CASSETTES, _cases, expect


def _priced_cases() -> list[object]:
    """The cassettes with an Anthropic Messages or Responses exchange (no CLI backend
    speaks Chat Completions), or the "data missing" case that skips (fails in CI)."""
    cases = []
    for case in _cases():
        name = case.values[0]  # type: ignore[attr-defined]
        path = CASSETTES / str(name)
        if not path.exists() or any(p in path.read_text() for p in PRICED_PATHS):
            cases.append(case)
    return cases


PRICED_PATHS = ("/v1/messages", "/v1/responses")


@pytest.mark.parametrize("cassette", _priced_cases())
def test_recorded_answers_are_priced_from_the_bytes_on_the_wire(
    cassette: str, conformance_dir: Path
) -> None:
    checked = 0
    for number, recorded in enumerate(load_cassette(conformance_dir / "cassettes" / cassette)):
        if recorded.request.path not in APIS or recorded.response.status >= 400:
            continue
        api = APIS[recorded.request.path][1]
        if api == "chat":
            continue  # no CLI backend speaks Chat Completions
        body = recorded.request.body if isinstance(recorded.request.body, dict) else {}
        streamed = bool(body.get("stream"))
        expected = expect(api, recorded, streamed)
        tap = Tap(api)
        raw = recorded.response.body
        if streamed:
            for start in range(0, len(raw), 7):  # events split anywhere, as TCP may
                tap.feed(raw[start : start + 7])
        else:
            tap.body(raw)
        assert tap.usage == expected.usage, f"{cassette} interaction {number}"
        assert tap.model_id, f"{cassette} interaction {number}"
        checked += 1
    assert checked, f"{cassette}: no Messages or Responses answer was priced"
