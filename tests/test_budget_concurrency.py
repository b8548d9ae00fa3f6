"""Twenty agent processes at once against one cap: no cap is ever passed.

Each agent makes one call that really costs about what its upper bound says, the
scripted server answers slowly (so every agent is asking at the same moment), and
the ledger afterwards must stay within the daily, role or model cap.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.cost.ledger import Ledger
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo

KEY = "sk-budget-concurrency"
AGENTS = 20
CAP = Decimal("0.02")
# One call: 100 input tokens at $1/M + 500 output tokens at $10/M = $0.0051.
USAGE = {"input_tokens": 100, "output_tokens": 500}


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


def project(tmp_path: Path, server: LLMServer, budgets: str) -> Path:
    repo = make_repo(tmp_path / "project")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "max_tokens = 500\nprice = { input = 1.0, output = 10.0 }\n\n"
        f"[budgets]\n{budgets}\n"
        f"\n[executor]\nmax_processes = {AGENTS}\n"  # every agent asks at the same moment
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    return repo


def wait_all(state: Path, count: int, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    store = RunStore(state)
    while True:
        listed = store.list(kind="agent")
        done = [r for r in listed if r.record and r.record.status in ("succeeded", "paused")]
        if len(listed) == count and len(done) == count:
            return
        assert time.monotonic() < deadline, [r.record.status for r in listed if r.record]
        time.sleep(0.2)


@pytest.mark.parametrize(
    "budgets",
    ["daily_usd = 0.02", "roles = { research = 0.02 }", "models = { chat = 0.02 }"],
    ids=["daily", "role", "model"],
)
def test_twenty_agents_at_once_never_pass_a_cap(
    budgets: str,
    tmp_path: Path,
    server: LLMServer,
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = project(tmp_path, server, budgets)
    monkeypatch.setenv("TEST_KEY", KEY)
    server.script("chat-x", *[Turn.text("done", delay=1.5, usage=USAGE)] * AGENTS)
    for number in range(AGENTS):
        result = cli(
            "agent",
            "run",
            "research",
            f"question {number}",
            "--model",
            "chat",
            "--detach",
            cwd=repo,
        )
        assert result.exit_code == 0, result.output
    wait_all(repo / ".agentctl", AGENTS)

    ledger = Ledger(repo / ".agentctl")
    entries = list(ledger.entries())
    spent = sum((e.cost for e in entries), Decimal(0))
    assert spent <= CAP, f"{len(entries)} calls spent ${spent}, past the ${CAP} cap"
    assert len(entries) >= 2  # the cap was used, not refused outright
    runs = [r.record for r in RunStore(repo / ".agentctl").list(kind="agent") if r.record]
    paused = [r for r in runs if r.status == "paused"]
    assert len(paused) == AGENTS - len(entries)
    assert all("budget" in (r.reason or "") for r in paused)
    assert not ledger.dir.joinpath("holds.json").read_text().count('"id"')  # nothing held


def test_a_fallback_to_a_dearer_model_reserves_at_its_price(
    tmp_path: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cheap model fits the cap; when it fails, the dear one must fit too, or not go."""
    repo = make_repo(tmp_path / "project")
    models = ""
    for name, output_price in (("cheap", "1.0"), ("dear", "100.0")):
        models += (
            f'[models.{name}]\nprovider = "openai"\napi = "chat"\nname = "{name}-x"\n'
            f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
            f"max_tokens = 500\nprice = {{ input = 1.0, output = {output_price} }}\n\n"
        )
    (repo / "agentctl.toml").write_text(models + "[budgets]\ndaily_usd = 0.02\n")
    (repo / "roles").mkdir()
    (repo / "roles" / "research.toml").write_text('model = "cheap"\nfallback = ["dear"]\n')
    monkeypatch.setenv("TEST_KEY", KEY)
    server.script("cheap-x", Turn.error(500))
    server.script("dear-x", Turn.text("expensive", usage=USAGE))  # would cost $0.0501
    result = cli("agent", "run", "research", "question", cwd=repo)
    assert result.exit_code == 1
    assert [r.body["model"] for r in server.requests] == ["cheap-x"]  # dear was never sent
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    assert listing.record is not None and listing.record.status == "paused"
    assert "daily budget" in (listing.record.reason or "")
    assert list(Ledger(repo / ".agentctl").entries()) == []


def test_a_dead_process_or_an_old_reservation_holds_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys
    from datetime import timedelta

    from agentctl.config.schema import Budgets
    from agentctl.cost.reserve import MAX_AGE, Reservations
    from agentctl.runs.timefmt import utc_now

    now = [utc_now()]
    ledger = Ledger(tmp_path)
    reservations = Reservations(ledger, Budgets(daily_usd=0.02), lambda: now[0])
    amount = Decimal("0.015")
    hold, _ = reservations.reserve(amount, role="dev", model="m", run_id="r")
    assert hold is not None
    second, decision = reservations.reserve(amount, role="dev", model="m", run_id="r")
    assert second is None and decision.limit == "daily"
    now[0] += MAX_AGE + timedelta(seconds=1)  # a hold past its age frees its money
    second, _ = reservations.reserve(amount, role="dev", model="m", run_id="r")
    assert second is not None
    reservations.release(second)
    # A hold made by a process that has since exited is dropped at once.
    code = (
        "import sys; from decimal import Decimal; from pathlib import Path\n"
        "from agentctl.config.schema import Budgets\n"
        "from agentctl.cost.ledger import Ledger\n"
        "from agentctl.cost.reserve import Reservations\n"
        "r = Reservations(Ledger(Path(sys.argv[1])), Budgets(daily_usd=0.02))\n"
        "assert r.reserve(Decimal('0.015'), role='dev', model='m', run_id='x')[0]\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert '"x"' in (ledger.dir / "holds.json").read_text()
    now[0] = utc_now()
    assert reservations.reserve(amount, role="dev", model="m", run_id="r")[0] is not None


def test_a_model_whose_own_cap_is_spent_is_skipped_for_the_next(
    tmp_path: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "project")
    models = ""
    for name in ("first", "second"):
        models += (
            f'[models.{name}]\nprovider = "openai"\napi = "chat"\nname = "{name}-x"\n'
            f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
            "max_tokens = 500\nprice = { input = 1.0, output = 10.0 }\n\n"
        )
    (repo / "agentctl.toml").write_text(models + "[budgets]\nmodels = { first = 0.000001 }\n")
    (repo / "roles").mkdir()
    (repo / "roles" / "research.toml").write_text('model = "first"\nfallback = ["second"]\n')
    monkeypatch.setenv("TEST_KEY", KEY)
    server.script("second-x", Turn.text("from the second"))
    result = cli("agent", "run", "research", "question", cwd=repo)
    assert result.exit_code == 0, result.output
    assert "from the second" in result.stdout
    assert [r.body["model"] for r in server.requests] == ["second-x"]
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    run = RunStore(repo / ".agentctl").get(listing.id)
    (switch,) = [e for e in read_journal(run.paths.events).events if e["type"] == "model.switch"]
    assert switch["to"] == "second" and "daily budget of model first" in switch["reason"]


def test_a_step_of_a_capped_pipeline_reserves_within_the_pipeline_cap(
    tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.config import load_config
    from agentctl.config.schema import Model, Price
    from agentctl.cost.metered import Meter
    from agentctl.cost.reserve import BudgetRefused
    from agentctl.llm.call import Caller
    from agentctl.llm.types import Message, Request, Usage
    from agentctl.workspace import find_workspace

    repo = project(tmp_path, server, "")
    (repo / "pipelines").mkdir()
    (repo / "pipelines" / "capped.toml").write_text('extends = "feature"\nbudget_usd = 0.02\n')
    monkeypatch.setenv("TEST_KEY", KEY)
    config = load_config(find_workspace(repo))
    store = RunStore(config.workspace.state_dir)
    pipe = store.create("pipeline", input={"pipeline": "capped"}, pipeline="capped")
    earlier = store.create("agent", input={}, parent=pipe, role="dev")
    Ledger(config.workspace.state_dir).charge(  # an earlier step spent $0.019
        run=earlier.load(),
        model_name="chat",
        model=Model(provider="openai", name="chat-x", price=Price(input=1.0, output=10.0)),
        usage=Usage(0, 1_900),
    )
    step = store.create("agent", input={}, parent=pipe, role="review")
    request = Request(messages=(Message("user", "review it"),), max_tokens=500)
    server.script("chat-x", Turn.text("approved"))
    with pytest.raises(BudgetRefused) as refused:
        Meter(config, step, "review").complete(Caller(config.models), request, ["chat"])
    assert refused.value.decision.limit == "pipeline:capped"
    assert "budget of pipeline capped $0.02 reached" in str(refused.value)
    assert server.requests == []
