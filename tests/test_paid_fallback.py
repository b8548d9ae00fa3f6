"""A local model that is down hands its role's work to a paid fallback: never silently,
and never past ``[budgets] fallback_usd`` a day (then the work waits for the local model)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke
from tests.processes import only_agent_run


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def configure(workspace: Path, server: LLMServer, fallback_usd: str) -> None:
    """dev: a local model (free, down) first, then a paid one on the scripted server."""
    config = workspace / "agentctl.toml"
    text = config.read_text().replace("[budgets]\n", f"[budgets]\nfallback_usd = {fallback_usd}\n")
    config.write_text(
        text + '\n[models.local]\nprovider = "openai"\napi = "chat"\nname = "local-x"\n'
        f'base_url = "http://127.0.0.1:{closed_port()}/v1"\napi_key_env = ""\n'
        "max_retries = 0\nprice = { input = 0, output = 0 }\n\n"
        '[models.paid]\nprovider = "openai"\napi = "chat"\nname = "paid-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = ""\nmax_retries = 0\n'
        "price = { input = 3.0, output = 15.0 }\n"
    )
    dev = workspace / "roles" / "dev.toml"
    lines = dev.read_text().splitlines(keepends=True)
    for n, line in enumerate(lines):
        if line.startswith("model = "):
            lines[n] = 'model = "local"\n'
        elif line.startswith("fallback = "):
            lines[n] = 'fallback = ["paid"]\n'
    dev.write_text("".join(lines))


def test_a_paid_fallback_is_journaled_with_its_cost(
    workspace: Path, server: LLMServer, cli: Invoke
) -> None:
    configure(workspace, server, "2.0")
    server.script("paid-x", Turn.text("Answered by the paid fallback."))
    result = cli("agent", "run", "dev", "Say hello")
    assert result.exit_code == 0, result.stderr
    events = read_journal(only_agent_run(workspace).paths.events).events
    (fell,) = [e for e in events if e["type"] == "llm.fallback"]
    assert (fell["role"], fell["first"], fell["to"]) == ("dev", "local", "paid")
    assert float(fell["cost_usd"]) > 0
    # The orchestrator says it once (the tick's report and the outbox), not every tick.
    first = cli("orchestrate", "--once")
    assert "fallbacks: dev fell back from local to paid paid" in first.stdout, first.stdout
    assert "so far today (cap $2 a day)" in first.stdout
    again = cli("orchestrate", "--once")
    assert "fell back" not in again.stdout
    outbox = sorted((workspace / ".agentctl" / "orchestrator" / "outbox").glob("*.json"))
    reports = [json.loads(p.read_text()) for p in outbox]
    assert sum(len(r.get("fallbacks", [])) for r in reports) == 1
    status = cli("status").stdout
    assert "paid fallback  dev: local → paid" in status and "of $2" in status


def test_past_fallback_usd_the_work_waits_instead_of_paying(
    workspace: Path, server: LLMServer, cli: Invoke
) -> None:
    configure(workspace, server, "0.000001")  # less than any call can cost
    result = cli("agent", "run", "dev", "Say hello")
    assert result.exit_code == 1
    run = only_agent_run(workspace)
    output = run.read_output()
    assert "not sent" in output["reason"] and "fallback_usd" in output["reason"]
    assert output.get("failure") == "transient"  # the orchestrator backs off and tries again
    assert server.requests == []  # nothing paid
    ledger = workspace / ".agentctl" / "ledger"
    lines = [json.loads(x) for f in ledger.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert lines == []
