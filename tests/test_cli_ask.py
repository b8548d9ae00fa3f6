"""``agentctl ask``, ``models test`` and ``cost`` against a local server set up in agentctl.toml."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke

CANARY = "sk-canary-7f3a9c0d1e2b"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


def configure(workspace: Path, server: LLMServer, **extra: str) -> None:
    (workspace / "agentctl.toml").write_text(
        f"""
[models.claude]
provider = "anthropic"
name = "claude-test"
base_url = "{server.anthropic_url}"
api_key_env = "ANTHROPIC_API_KEY"
max_retries = 1
price = {{ input = 3.0, output = 15.0, cache_write = 3.75, cache_read = 0.3 }}

[models.local]
provider = "openai"
name = "qwen-test"
base_url = "{server.openai_url}"
max_concurrency = 2
price = {{ input = 0.5, output = 1.5 }}

[models.codex]
provider = "openai"
api = "responses"
name = "codex-test"
base_url = "{server.openai_url}"
api_key_env = "OPENAI_API_KEY"
price = {{ input = 1.75, output = 14.0, cache_read = 0.175 }}
"""
        + "\n".join(extra.values())
    )


def expected_cost(usage: dict[str, int], price: dict[str, str]) -> Decimal:
    """usage × price, computed here independently of agentctl's pricing code."""
    million = Decimal(1_000_000)
    return (
        usage["input_tokens"] * Decimal(price["input"])
        + usage["output_tokens"] * Decimal(price["output"])
        + usage["cache_write_tokens"] * Decimal(price.get("cache_write", price["input"]))
        + usage["cache_read_tokens"] * Decimal(price.get("cache_read", price["input"]))
    ) / million


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude", {"input": "3.0", "output": "15.0", "cache_write": "3.75", "cache_read": "0.3"}),
        ("local", {"input": "0.5", "output": "1.5"}),
        ("codex", {"input": "1.75", "output": "14.0", "cache_read": "0.175"}),
    ],
)
def test_ask_streams_prices_and_records(
    workspace: Path, server: LLMServer, cli: Invoke, model: str, price: dict[str, str]
) -> None:
    configure(workspace, server)
    server.script(
        "*", Turn.text("The answer is 42.", usage={"input_tokens": 1200, "output_tokens": 7})
    )
    env = {"ANTHROPIC_API_KEY": CANARY, "OPENAI_API_KEY": CANARY}
    result = cli("ask", "--model", model, "What is the answer?", cwd=workspace, env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "The answer is 42.\n"  # raw text into a pipe
    assert "run " in result.stderr and "$" in result.stderr
    (request,) = server.requests
    reported = {
        "input_tokens": request.usage["input_tokens"] - request.usage["cache_read_tokens"]
        if model != "claude"
        else request.usage["input_tokens"],
        "output_tokens": request.usage["output_tokens"],
        "cache_write_tokens": request.usage["cache_write_tokens"],
        "cache_read_tokens": request.usage["cache_read_tokens"],
    }
    want = expected_cost(reported, price)
    assert want > 0
    report = json.loads(cli("cost", "--json", env=env).stdout, parse_float=Decimal)
    assert report["total"]["cost_usd"] == want
    run = json.loads(cli("runs", "list", "--json", "--kind", "ask").stdout)[0]
    assert run["status"] == "succeeded" and run["model"] == model
    shown = json.loads(cli("runs", "show", run["id"], "--json").stdout)
    assert shown["output"]["text"] == "The answer is 42."
    assert any(e["type"] == "llm.call" for e in shown["recent_events"])


def test_ask_json_and_cost_by_role(workspace: Path, server: LLMServer, cli: Invoke) -> None:
    configure(workspace, server)
    server.script("qwen-test", Turn.text("a"), Turn.text("b"))
    for role in ("main", "review"):
        result = cli("ask", "-m", "local", "--role", role, "--json", "x", cwd=workspace)
        answer = json.loads(result.stdout, parse_float=Decimal)
        assert answer["model"] == "local" and answer["usage"]["output_tokens"] > 0
    rows = json.loads(cli("cost", "--by", "role", "--json").stdout)["rows"]
    assert {row["key"] for row in rows} == {"main", "review"}


def test_models_test_reports_latency_usage_cost_or_the_error(
    workspace: Path, server: LLMServer, cli: Invoke
) -> None:
    configure(workspace, server)
    server.script("qwen-test", Turn.text("ok"))
    result = cli("models", "test", "local", cwd=workspace)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ok: local (qwen-test) answered 'ok' in ")
    assert "tokens in" in result.stdout and "$" in result.stdout
    server.script("qwen-test", Turn.error(404, message="model 'qwen-test' not found"))
    result = cli("models", "test", "local")
    assert result.exit_code == 1
    assert result.stderr.startswith("agentctl: error: local: the request was refused: ")
    assert "not found" in result.stderr and "HTTP 404" in result.stderr


def test_a_missing_key_is_one_clear_line(workspace: Path, server: LLMServer, cli: Invoke) -> None:
    configure(workspace, server)
    result = cli("ask", "-m", "claude", "hi", cwd=workspace, env={"ANTHROPIC_API_KEY": ""})
    assert result.exit_code == 2
    assert result.stderr == (
        "agentctl: error: model 'claude' needs an API key in $ANTHROPIC_API_KEY, which is not "
        "set — export ANTHROPIC_API_KEY=... or point the role at another model "
        "(agentctl models list)\n"
    )
    assert server.requests == []


def test_budget_refuses_before_sending(workspace: Path, server: LLMServer, cli: Invoke) -> None:
    configure(workspace, server, budget="[budgets]\ndaily_usd = 0.0001")
    result = cli("ask", "-m", "claude", "hi", cwd=workspace, env={"ANTHROPIC_API_KEY": CANARY})
    assert result.exit_code == 1
    assert "not sent: daily budget" in result.stderr
    assert server.requests == []  # nothing reached the model
    run = json.loads(cli("runs", "list", "--json").stdout)[0]
    assert run["status"] == "failed" and "budget" in run["reason"]


def test_spend_cap_pauses_the_run(workspace: Path, server: LLMServer, cli: Invoke) -> None:
    configure(workspace, server)
    server.script("claude-test", Turn.quota_exceeded())
    result = cli("ask", "-m", "claude", "hi", cwd=workspace, env={"ANTHROPIC_API_KEY": CANARY})
    assert result.exit_code == 1 and "spend limit or quota reached" in result.stderr
    run = json.loads(cli("runs", "list", "--json").stdout)[0]
    assert run["status"] == "paused"
    server.assert_complete()


def test_the_api_key_is_written_nowhere(workspace: Path, cli: Invoke) -> None:
    """Canary: success, retry and failure paths; no file under .agentctl holds the key."""
    with LLMServer(api_key=CANARY) as good, LLMServer(api_key="another-key") as refusing:
        configure(workspace, good)
        good.script("claude-test", Turn.overloaded(), Turn.text("fine"))
        good.script("codex-test", Turn.error(500), Turn.error(500))
        env = {"ANTHROPIC_API_KEY": CANARY, "OPENAI_API_KEY": CANARY}
        assert cli("ask", "-m", "claude", "hi", cwd=workspace, env=env).exit_code == 0
        assert cli("ask", "-m", "codex", "hi", env=env).exit_code == 1
        configure(workspace, refusing)
        assert cli("ask", "-m", "claude", "hi", env=env).exit_code == 1
        assert good.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # it was sent
    files = [p for p in (workspace / ".agentctl").rglob("*") if p.is_file()]
    assert len(files) > 10
    leaks = [p for p in files if CANARY.encode() in p.read_bytes()]
    assert leaks == []


def test_max_concurrency_holds_across_processes(workspace: Path, server: LLMServer) -> None:
    """6 agentctl processes call a model with max_concurrency = 2: the server sees at most 2."""
    configure(workspace, server)
    server.script("qwen-test", *[Turn.text("ok", delay=0.3)] * 6)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "agentctl", "ask", "-m", "local", f"call {i}"],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert server.max_in_flight("qwen-test") == 2
    server.assert_complete()
