"""Issue 15: dry runs that tell the truth (triage preview, pipeline run --dry-run)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.config import load_config
from agentctl.cost.metered import estimate_tokens
from agentctl.cost.pricing import upper_bound
from agentctl.orchestrator.triage import _request, missing_keys, preview
from agentctl.trackers import Ticket
from agentctl.workspace import find_workspace
from tests.conftest import Invoke

TICKETS = [Ticket("T-1", "Add feature 1"), Ticket("T-2", "Add feature 2")]


def test_triage_preview_names_the_tickets_and_prices_the_dearest_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped orchestrator role is sonnet → haiku: the high end is sonnet's bound."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    config = load_config(find_workspace(workspace))
    seen = preview(config, TICKETS, [])
    assert seen.problem is None
    assert seen.lines[:2] == [
        "T-1: would ask the orchestrator model (Add feature 1)",
        "T-2: would ask the orchestrator model (Add feature 2)",
    ]
    assert seen.lines[-1].startswith("triage: one call to sonnet, haiku")
    request = _request(config, TICKETS, [])
    tokens = estimate_tokens(request)
    bounds = {
        name: upper_bound(
            tokens,
            min(request.max_tokens, config.models[name].max_tokens),
            config.models[name].price,
        )
        for name in ("sonnet", "haiku")
    }
    assert seen.high == max(bounds.values()) == bounds["sonnet"] > bounds["haiku"]
    assert Decimal(0) < seen.low < seen.high
    assert preview(config, [], []).lines == []  # nothing new: nothing to ask, $0


def test_a_missing_key_for_every_triage_model_is_a_problem_naming_each(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(find_workspace(workspace))
    problem = missing_keys(config)
    assert problem is not None
    assert "sonnet needs $ANTHROPIC_API_KEY" in problem
    assert "haiku needs $ANTHROPIC_API_KEY" in problem
    assert preview(config, TICKETS, []).problem == problem
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert missing_keys(load_config(find_workspace(workspace))) is None


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("agentctl: error:")]


@pytest.mark.parametrize(
    "args",
    [("coding-pipeline", "--ticket", "T-99"), ("feature",)],
    ids=["unknown-ticket", "no-task"],
)
def test_a_dry_run_refuses_what_a_real_run_refuses(
    workspace: Path, cli: Invoke, args: tuple[str, ...]
) -> None:
    dry = cli("pipeline", "run", *args, "--dry-run", cwd=workspace)
    real = cli("pipeline", "run", *args)
    assert (dry.exit_code, real.exit_code) == (2, 2)
    assert dry.stdout == ""
    assert len(_error_lines(dry.stderr)) == 1
    assert _error_lines(dry.stderr) == _error_lines(real.stderr)
    assert not (workspace / ".agentctl" / "runs").exists() or not any(
        (workspace / ".agentctl" / "runs").iterdir()
    )


def test_the_dry_run_cost_range_includes_the_fallback_models(workspace: Path, cli: Invoke) -> None:
    """Shipped: dev is coder-next (free, local) → sonnet; the high end prices sonnet."""
    (workspace / "pipelines" / "solo.toml").write_text(
        'description = "one step"\n\n[[steps]]\nid = "implement"\nrole = "dev"\n'
        'prompt = "{inputs.task}"\n'
    )
    (workspace / "roles" / "dev.toml").write_text(
        'model = "coder-next"\nfallback = ["sonnet"]\nbudget_usd = 1000.0\nmax_turns = 2\n'
    )
    result = cli("pipeline", "run", "solo", "--task", "x", "--dry-run", "--json", cwd=workspace)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout, parse_float=Decimal)
    (step,) = plan["steps"]
    assert step["models"] == ["coder-next", "sonnet"] and step["model"] == "coder-next"
    config = load_config(find_workspace(workspace))
    sonnet = config.models["sonnet"]
    want = 2 * upper_bound(50_000, sonnet.max_tokens, sonnet.price)
    assert plan["cost_usd"]["low"] == 0  # the local model answering at once costs nothing
    assert plan["cost_usd"]["high"] == want.quantize(Decimal("0.01")) > 0
    table = cli("pipeline", "run", "solo", "--task", "x", "--dry-run", env={"COLUMNS": "200"})
    assert "coder-next → sonnet" in table.stdout
