"""A ledger line is checked before it counts: bad ones are reported once and left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config.schema import Model, Price
from agentctl.cost.ledger import Ledger
from agentctl.llm.types import Usage
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo

KEY = "sk-ledger-trust"
PRICE = Price(input=1.0, output=10.0)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=KEY) as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(tmp_path / "project")
    (repo / "agentctl.toml").write_text(
        f'[models.chat]\nprovider = "openai"\napi = "chat"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "max_tokens = 500\nprice = { input = 1.0, output = 10.0 }\n\n"
        "[budgets]\ndaily_usd = 0.02\n"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    monkeypatch.setenv("TEST_KEY", KEY)
    monkeypatch.chdir(repo)
    return repo


def spend(state: Path, output_tokens: int) -> Path:
    """One real entry for today (1,000 output tokens at $10/M: $0.01); its day file."""
    run = RunStore(state).create("ask", input={}, role="research", model="chat")
    model = Model(provider="openai", name="chat-x", price=PRICE)
    entry = Ledger(state).charge(
        run=run.load(), model_name="chat", model=model, usage=Usage(0, output_tokens)
    )
    return Ledger(state).path_for(entry.day)


def with_cost(path: Path, cost: str, **changes: object) -> str:
    """A copy of the file's first line with its cost replaced by the raw JSON ``cost``."""
    line = json.loads(path.read_text().splitlines()[0])
    line.update(changes)
    line["cost"] = "COST"
    return json.dumps(line).replace('"COST"', cost)


BAD = {"-5": "cost must be between 0 and 1000", "1e308": "1E+308", "NaN": "nan", '"5"': "'5'"}


def test_bad_lines_are_warned_once_left_out_and_never_crash(project: Path, cli: Invoke) -> None:
    path = spend(project / ".agentctl", 1_900)  # $0.019 of the $0.02 day
    bad = [with_cost(path, cost) for cost in BAD]
    bad.append(with_cost(path, "0.001", usage={"input_tokens": -3, "output_tokens": 1}))
    with path.open("a") as handle:
        handle.write("\n".join(bad) + "\n")

    first = cli("cost", "--json")
    assert first.exit_code == 0, first.output
    assert Decimal(str(json.loads(first.stdout)["total"]["cost_usd"])) == Decimal("0.019")
    warnings = first.stderr.splitlines()
    assert len(warnings) == 5, warnings
    expected = [*BAD.values(), "usage"]
    for number, (warning, shown) in enumerate(zip(warnings, expected, strict=True), 2):
        assert f"{path.name} line {number}:" in warning and shown in warning, warning
    again = cli("cost")  # the same process has said it already
    assert again.exit_code == 0 and "$0.019" in again.stdout
    assert "line" not in again.stderr

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    for command in (["status"], ["status", "--json"], ["cost", "--by", "day"]):
        done = subprocess.run(
            [sys.executable, "-m", "agentctl", *command],
            cwd=project,
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{path.name} line 2:" in done.stdout + done.stderr


def test_an_agent_is_still_refused_at_the_cap(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    path = spend(project / ".agentctl", 1_900)  # $0.019 of the $0.02 day
    with path.open("a") as handle:
        handle.write(with_cost(path, "-5") + "\n")
    server.script("chat-x", Turn.text("done"))
    result = cli("agent", "run", "research", "question", "--model", "chat")
    assert result.exit_code == 1
    assert server.requests == []  # nothing was sent
    (listing,) = RunStore(project / ".agentctl").list(kind="agent")
    assert listing.record is not None and listing.record.status == "paused"
    assert "daily budget $0.02 reached: $0.019 spent" in (listing.record.reason or "")


def test_a_cost_that_disagrees_with_its_tokens_counts_the_computed_figure(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    path = spend(project / ".agentctl", 1_000)  # $0.01
    path.write_text(with_cost(path, "0.000001") + "\n")  # claims a ten-thousandth of that
    shown = cli("cost", "--json")
    assert shown.exit_code == 0
    assert Decimal(str(json.loads(shown.stdout)["total"]["cost_usd"])) == Decimal("0.01")
    assert "disagrees with its tokens × prices; counted as 0.01" in shown.stderr
    # ... and the budget counts it too: $0.01 spent leaves less than this call may cost.
    path.write_text(path.read_text() + with_cost(path, "0", usage={"output_tokens": 1_500}) + "\n")
    server.script("chat-x", Turn.text("done"))
    result = cli("agent", "run", "research", "question", "--model", "chat")
    assert result.exit_code == 1 and server.requests == []
