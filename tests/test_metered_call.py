"""The one metered call (``llm.metered.Meter.call``): refused before anything is sent
when a cap would be passed, recorded in the ledger and the journal after an answer.

Real OpenAI SDK against the scripted server, a config loaded from a real project.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config import Config, load_config
from agentctl.cost.ledger import Ledger
from agentctl.cost.metered import Meter, journal_retries
from agentctl.cost.reserve import BudgetRefused
from agentctl.llm.types import Message, Request
from agentctl.runs import Run, RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace
from tests.conftest import git, make_repo

KEY = "sk-metered-call"
# 100 input tokens at $1/M + 400 output tokens at $10/M = $0.0041.
USAGE = {"input_tokens": 100, "output_tokens": 400}


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


def setup(
    tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch, budgets: str
) -> tuple[Config, Run]:
    repo = make_repo(tmp_path / "project")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 1\n'
        "max_tokens = 500\nprice = { input = 1.0, output = 10.0 }\n\n"
        f"[budgets]\n{budgets}\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    monkeypatch.setenv("TEST_KEY", KEY)
    config = load_config(find_workspace(repo))
    run = RunStore(config.workspace.state_dir).create("ask", input={}, role="main")
    return config, run


REQUEST = Request(messages=(Message("user", "hello"),), max_tokens=500)


def test_a_call_that_may_pass_a_cap_is_refused_before_it_is_sent(
    tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The most this call may cost is ~$0.005 (500 output tokens at $10/M): over $0.001.
    config, run = setup(tmp_path, server, monkeypatch, "daily_usd = 0.001")
    assert config.settings.budgets.daily_usd == Decimal("0.001")  # Decimal from load on
    server.script("chat-x", Turn.text("never sent", usage=USAGE))
    with pytest.raises(BudgetRefused) as refused:
        Meter(config, run, "main").call(REQUEST, ["chat"])
    assert refused.value.decision.limit == "daily"
    assert "daily budget $0.001 reached" in str(refused.value)
    assert server.requests == []
    assert Ledger(config.workspace.state_dir).spent(since=None) == 0
    assert [e for e in read_journal(run.paths.events).events if e["type"] == "llm.call"] == []


def test_an_answered_call_is_priced_into_the_ledger_and_the_journal(
    tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, run = setup(tmp_path, server, monkeypatch, "daily_usd = 1.0")
    server.script("chat-x", Turn.rate_limited(retry_after_ms=10), Turn.text("hi", usage=USAGE))
    meter = Meter(config, run, "main", on_attempt=journal_retries(run))
    outcome, entry = meter.call(REQUEST, ["chat"])
    assert outcome.model == "chat" and outcome.response.text == "hi"
    assert entry.cost == Decimal("0.0041")
    ledger = Ledger(config.workspace.state_dir)
    assert ledger.spent(since=None, run_ids={run.id}) == Decimal("0.0041")
    events = read_journal(run.paths.events).events
    (retry,) = [e for e in events if e["type"] == "llm.retry"]
    assert retry["model"] == "chat" and retry["attempt"] == 1
    (call,) = [e for e in events if e["type"] == "llm.call"]
    assert call["model"] == "chat" and call["cost_usd"] == "0.0041"
    assert call["usage"]["output_tokens"] == 400
    assert len(server.requests) == 2  # the rate-limited try, then the answer
