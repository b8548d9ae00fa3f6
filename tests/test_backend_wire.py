"""The metering proxy prices real answers: every recorded Anthropic and Responses answer
of the conformance cassettes, fed to ``wire.Tap`` in small pieces, gives the usage the
answer carries (parsed independently, by the provider conformance test's own reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.agent.backends.wire import Tap
from agentctl.testing.replay import load_cassette
from tests.test_conformance_providers import APIS, _cases, expect


@pytest.mark.parametrize("cassette", _cases())
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
    if not checked:
        pytest.skip("no Messages or Responses answer in this cassette")
