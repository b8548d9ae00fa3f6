"""Role agents as real processes against the scripted model server, on real git repos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git, make_repo

CANARY = "sk-canary-agent-5d1e9f7a"
APIS = {"messages": "claude-x", "chat": "chat-x", "responses": "codex-x"}
FIX = [
    Turn.tool_call("read", {"path": "calc.py"}),
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.tool_call("bash", {"command": "python -m unittest 2>&1 | tail -1; env"}),
    Turn.text("Fixed add(): it subtracted. The tests pass now."),
]


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer(api_key=CANARY) as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with a failing unittest, and an agentctl.toml pointing at the server."""
    repo = make_repo(tmp_path / "project")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text(
        "import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    )
    models = []
    for api, name in APIS.items():
        provider = "anthropic" if api == "messages" else "openai"
        url = server.anthropic_url if api == "messages" else server.openai_url
        api_line = "" if api == "messages" else f'api = "{api}"\n'
        models.append(
            f'[models.{api}]\nprovider = "{provider}"\n{api_line}name = "{name}"\n'
            f'base_url = "{url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
            "price = { input = 1.0, output = 2.0 }\n"
        )
    (repo / "agentctl.toml").write_text("\n".join(models))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "failing test")
    monkeypatch.setenv("TEST_KEY", CANARY)
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture(params=["zygote", "exec"])
def spawn(request: pytest.FixtureRequest, project: Path) -> str:
    """How agent processes start: forked by the zygote (the default) or exec'd; a forked
    agent is cancelled, killed, resumed and gc'd exactly like an exec'd one."""
    how = str(request.param)
    if how != "zygote":
        set_spawn(project, how)
    return how


def set_spawn(root: Path, how: str) -> None:
    config = root / "agentctl.toml"
    config.write_text(config.read_text() + f'\n[executor]\nspawn = "{how}"\n')
    git(root, "commit", "-qam", f"spawn = {how}")


def spawns(root: Path, run_id: str) -> list[str]:
    """How each worker of the run started, from its journal."""
    events = read_journal(RunStore(root / ".agentctl").get(run_id).paths.events).events
    return [str(e.get("spawn")) for e in events if e["type"] == "process.spawned"]


def unittest_passes(repo: Path) -> bool:
    done = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=repo, capture_output=True)
    return done.returncode == 0


def only_run(repo: Path):  # type: ignore[no-untyped-def]
    (listing,) = RunStore(repo / ".agentctl").list(kind="agent")
    return RunStore(repo / ".agentctl").get(listing.id)


@pytest.mark.parametrize("api", list(APIS))
def test_a_dev_agent_fixes_a_failing_test(
    api: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(APIS[api], *FIX)
    assert not unittest_passes(project)
    result = cli("agent", "run", "dev", "Make the tests pass", "--model", api)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "Fixed add(): it subtracted. The tests pass now."
    assert "→ edit(" in result.stderr and "succeeded (answer)" in result.stderr
    assert unittest_passes(project)
    server.assert_complete()
    run = only_run(project)
    assert run.load().status == "succeeded"
    names = {p.name for p in run.dir.iterdir()}
    assert {"run.json", "input.json", "events.jsonl", "transcript.jsonl", "output.json"} <= names
    events = read_journal(run.paths.events).events
    bash = next(e for e in events if e["type"] == "tool.result" and e["name"] == "bash")
    assert "OK" in bash["content"] and "TEST_KEY" not in bash["content"]  # no key in tool env
    transcript = [json.loads(line) for line in run.paths.transcript.read_text().splitlines()]
    assert [m["role"] for m in transcript] == ["user", *["assistant", "tool"] * 3, "assistant"]
    # The whole state folder is free of the key, though every request carried it.
    assert all(
        r.headers.get("authorization", "").endswith(CANARY) or r.headers.get("x-api-key") == CANARY
        for r in server.requests
    )
    leaks = [
        p
        for p in (project / ".agentctl").rglob("*")
        if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert leaks == []
    shown = cli("runs", "show", run.id).stdout
    assert "status:      succeeded" in shown and "role:        dev" in shown
    assert "tool.result" in cli("runs", "tail", run.id).stdout
    cost = json.loads(cli("cost", "--run", run.id, "--json").stdout)
    assert cost["total"]["calls"] == 4


def test_detach_returns_at_once_and_the_run_finishes(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", Turn.text("done"))
    result = cli("agent", "run", "research", "what is this?", "--model", "chat", "--detach")
    assert result.exit_code == 0
    run_id = result.stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: run.load().status == "succeeded")
    assert run.read_output()["text"] == "done"


def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_repeated_call_is_stopped_as_a_loop(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", *[Turn.tool_call("read", {"path": "calc.py"})] * 3)
    result = cli("agent", "run", "dev", "x", "--model", "chat")
    assert result.exit_code == 1
    output = only_run(project).read_output()
    assert output["ending"] == "loop" and "3 times in a row" in output["reason"]
    server.assert_complete()  # nothing after the third identical call


def test_malformed_calls_get_tool_errors_then_a_clean_failure(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", *[Turn.tool_call("edit", '{"path": "calc.py"')] * 4)
    result = cli("agent", "run", "dev", "x", "--model", "chat")
    assert result.exit_code == 1
    run = only_run(project)
    assert run.read_output()["ending"] == "malformed"
    second = server.requests[1].body["messages"]
    assert "not valid JSON" in second[-1]["content"]  # the model was told what was wrong
    server.assert_complete()


def test_the_budget_stops_spend_before_the_call(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    usage = {"input_tokens": 100, "output_tokens": 1500}
    server.script("chat-x", Turn.tool_call("read", {"path": "calc.py"}, usage=usage))
    result = cli("agent", "run", "dev", "x", "--model", "chat", "--budget", "0.02")
    assert result.exit_code == 1
    run = only_run(project)
    assert run.load().status == "paused"
    assert run.read_output()["ending"] == "budget"
    assert len(server.requests) == 1  # the second call was never sent
    server.assert_complete()


def process_running(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                return True
    return False


def test_cancel_kills_the_agent_and_what_its_commands_left_behind(
    spawn: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", Turn.tool_call("bash", {"command": "sleep 987 & sleep 986"}))
    run_id = cli("agent", "run", "dev", "x", "--model", "chat", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: process_running("sleep 986"))
    assert process_running(f"agent worker {run_id}")  # what ps shows, forked or not
    assert cli("runs", "cancel", run_id, "--grace", "0.5").exit_code == 0
    wait_for(lambda: not process_running("sleep 98"), timeout=5)
    assert run.load().status == "canceled"
    wait_for(lambda: not process_running(f"agent worker {run_id}"), timeout=5)
    assert spawns(project, run_id) == [spawn]


def test_ctrl_c_in_a_foreground_run_cancels_it_and_its_commands(
    project: Path, server: LLMServer
) -> None:
    server.script("chat-x", Turn.tool_call("bash", {"command": "sleep 985 & sleep 984"}))
    foreground = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "agent", "run", "dev", "x", "--model", "chat"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: process_running("sleep 984"))
    foreground.send_signal(signal.SIGINT)  # what Ctrl-C at the terminal sends
    _, err = foreground.communicate(timeout=20)
    assert foreground.returncode == 130
    assert "agentctl: canceled " in err and "Traceback" not in err
    wait_for(lambda: not process_running("sleep 98"), timeout=5)
    run = only_run(project)
    assert run.load().status == "canceled"
    assert not process_running(f"agent worker {run.id}")


def test_kill_9_mid_tool_then_resume_does_not_redo_finished_calls(
    project: Path, server: LLMServer, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script("chat-x", Turn.tool_call("write", {"path": "notes.txt", "content": "one\n"}))
    monkeypatch.setenv("AGENTCTL_FAILPOINT", "agent.after_tool_run")
    # The fail point fires after the first tool ran: the write happened, its result is lost.
    result = cli("agent", "run", "dev", "x", "--model", "chat")
    run = only_run(project)
    assert result.exit_code == 1 and run.load().status == "running"  # dead, not finished
    monkeypatch.delenv("AGENTCTL_FAILPOINT")
    server.script("chat-x", Turn.tool_call("read", {"path": "notes.txt"}), Turn.text("done"))
    resumed = cli("runs", "resume", run.id)
    assert resumed.exit_code == 0, resumed.stderr
    assert run.load().status == "succeeded"
    assert (project / "notes.txt").read_text() == "one\n"  # written once, never redone
    starts = [e for e in read_journal(run.paths.events).events if e["type"] == "tool.start"]
    assert [e["name"] for e in starts] == ["write", "read"]
    interrupted = server.requests[1].body["messages"][-1]["content"]
    assert "was interrupted before it finished" in interrupted


def test_kill_9_mid_stream_then_resume_then_gc(
    spawn: str, project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        "chat-x",
        Turn.tool_call("write", {"path": "a.txt", "content": "a"}),
        Turn.stall(after=1, seconds=30),
    )
    run_id = cli("agent", "run", "dev", "x", "--model", "chat", "--detach").stdout.strip()
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: len(server.requests) == 2)  # the second answer is streaming, stalled
    os.killpg(run.load().pgid or 0, signal.SIGKILL)
    wait_for(lambda: "stale" in cli("runs", "list", "--json").stdout)
    server.script("chat-x", Turn.text("finished"))
    assert cli("runs", "resume", run_id).exit_code == 0
    assert run.read_output()["text"] == "finished"
    writes = [e for e in read_journal(run.paths.events).events if e["type"] == "tool.start"]
    assert len(writes) == 1
    assert (project / "a.txt").read_text() == "a"
    assert spawns(project, run_id) == [spawn, spawn]
    assert cli("runs", "gc", "--older-than", "0s").exit_code == 0
    assert not run.dir.exists()


def test_a_message_to_the_inbox_reaches_the_model_next_turn(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        "chat-x",
        Turn.tool_call("read", {"path": "calc.py"}, delay=0.5),
        Turn.text("ok, using tabs"),
    )
    run_id = cli("agent", "run", "dev", "x", "--model", "chat", "--detach").stdout.strip()
    wait_for(lambda: len(server.requests) == 1)
    assert cli("runs", "send", run_id, "Use tabs, not spaces.").exit_code == 0
    run = RunStore(project / ".agentctl").get(run_id)
    wait_for(lambda: run.load().status == "succeeded")
    last = server.requests[1].body["messages"][-1]
    assert last["role"] == "user"
    assert last["content"] == "Message from the person running agentctl: Use tabs, not spaces."


def test_a_model_list_moves_on_after_a_refusal(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script("chat-x", Turn.text("I will not.", stop="refusal"))
    server.script("claude-x", Turn.text("Here is the answer."))
    result = cli(
        "--set", "roles.research.model=['chat', 'messages']", "agent", "run", "research", "question"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "Here is the answer."
    events = read_journal(only_run(project).paths.events).events
    (switch,) = [e for e in events if e["type"] == "model.switch"]
    assert (switch["to"], switch["reason"]) == ("messages", "refusal")
    server.assert_complete()


def test_the_review_role_submits_a_verdict_through_finish(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    verdict = {
        "verdict": "request_changes",
        "summary": "add() subtracts.",
        "comments": [{"file": "calc.py", "line": 2, "body": "use a + b"}],
    }
    server.script("chat-x", Turn.text("Looks fine to me."), Turn.tool_call("finish", verdict))
    result = cli("agent", "run", "review", "review the change", "--model", "chat", "--json")
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["ending"] == "verdict" and output["verdict"] == "request_changes"
    assert output["comments"] == verdict["comments"]
    nudge = server.requests[1].body["messages"][-1]["content"]
    assert "finish tool" in nudge  # a plain-text answer is not a verdict
    tools = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert "finish" in tools and "write" not in tools and "bash" not in tools


def test_gc_removes_old_finished_runs_only(project: Path, cli: Invoke) -> None:
    from agentctl.testing.runs import make_finished_runs

    old = make_finished_runs(project / ".agentctl", 3)  # finished on 2026-11-25 09:00
    live = RunStore(project / ".agentctl").create("agent", input={})
    result = cli("runs", "gc", "--older-than", "1h", "--dry-run", "--json")
    assert sorted(json.loads(result.stdout)["removed"]) == sorted(old)
    assert all((project / ".agentctl" / "runs" / i).exists() for i in old)
    cli("runs", "gc", "--older-than", "1h")
    left = {p.name for p in (project / ".agentctl" / "runs").iterdir() if p.name != ".live"}
    assert left == {live.id}


def test_a_run_still_starting_is_not_resumed_twice(project: Path) -> None:
    """Spawned but not yet started (a pipeline killed right then): resume must not race it."""
    from agentctl.agent.supervise import resume_run
    from agentctl.config import load_config
    from agentctl.errors import UsageError
    from agentctl.workspace import find_workspace

    config = load_config(find_workspace(project))
    run = RunStore(project / ".agentctl").create("agent", input={"role": "dev"})
    starting = subprocess.Popen(["sleep", "30"])
    try:
        run.journal.append("process.spawned", durable=True, pid=starting.pid)
        with pytest.raises(UsageError, match="is starting"):
            resume_run(config, run)
    finally:
        starting.kill()
        starting.wait()
    spawned = [e for e in read_journal(run.paths.events).events if e["type"] == "process.spawned"]
    assert len(spawned) == 1  # no second worker
