"""The main session through `agentctl chat --message`, with a scripted main model."""

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

from agentctl.commands.demo import prepare
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from tests.conftest import Invoke

MAIN = "demo-reviewer"  # the main role's model in these tests (an anthropic-shaped one)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = prepare(tmp_path / "project", server, scripted=False).root
    for role, model in (("main", MAIN), ("research", "demo-coder")):
        path = root / "roles" / f"{role}.toml"
        text = path.read_text()
        lines = [
            f'model = "{model}"'
            if line.startswith("model = ")
            else "fallback = []"
            if line.startswith("fallback = ")
            else line
            for line in text.splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(root)
    return root


def main_requests(server: LLMServer) -> list[dict[str, object]]:
    return [r.body for r in server.requests if r.model == MAIN]


def test_spawned_work_reports_back_into_the_chat(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        MAIN,
        Turn.tool_call("spawn_agent", {"role": "research", "task": "2+2?"}),
        Turn.text("I asked the research agent."),
        Turn.text("The research agent says: 4."),
    )
    server.script("demo-coder", Turn.text("4"))
    result = cli("chat", "--message", "What is 2+2? Ask an agent.", "--wait")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "I asked the research agent." in result.stdout
    assert "[report] run " in result.stdout and "succeeded: 4" in result.stdout
    assert result.stdout.rstrip().endswith("The research agent says: 4.")
    last = main_requests(server)[-1]["messages"]
    assert any("succeeded: 4" in json.dumps(m) for m in last)  # the note reached the model
    (chat,) = RunStore(project / ".agentctl").list(kind="chat")
    cost = json.loads(cli("cost", "--run", chat.id, "--json", "--by", "role").stdout)
    assert {r["key"] for r in cost["rows"]} == {"main", "research"}  # all tiers under the chat
    server.assert_complete()


def test_tickets_runs_and_costs_through_tools(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        MAIN,
        Turn.tool_calls(
            [
                ("create_ticket", {"title": "Add a subtract()", "description": "calc needs it"}),
                ("list_runs", {"limit": 5}),
                ("show_cost", {}),
            ]
        ),
        Turn.text("Filed T-2."),
    )
    result = cli("chat", "--message", "File a ticket for subtract()")
    assert result.exit_code == 0, result.stderr
    assert LocalTracker(project / ".agentctl").get("T-2").title == "Add a subtract()"
    tool_results = [m for m in main_requests(server)[1]["messages"] if m["role"] == "user"][-1]
    text = json.dumps(tool_results)
    assert "created ticket T-2" in text and "runs; newest" in text and "total: $" in text
    (chat,) = RunStore(project / ".agentctl").list(kind="chat")
    server.script(MAIN, Turn.tool_call("read_run", {"id": chat.id}), Turn.text("ok"))
    assert cli("chat", "--message", "read yourself", "--resume", "last").exit_code == 0
    assert chat.id in json.dumps(main_requests(server)[-1]["messages"])


def test_the_orchestrator_starts_takes_an_instruction_and_stops(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    for ticket in LocalTracker(project / ".agentctl").list():
        LocalTracker(project / ".agentctl").set_state(ticket.id, "Canceled")
    server.script(
        MAIN,
        Turn.tool_calls(
            [
                ("orchestrator_start", {"interval": "1h"}),
                ("orchestrator_instruct", {"text": "prioritise bugs"}),
            ]
        ),
        Turn.text("Running."),
        Turn.tool_call("orchestrator_stop", {}),
        Turn.text("Stopped."),
    )
    assert cli("chat", "--message", "start working").exit_code == 0
    pid = int((project / ".agentctl" / "orchestrator" / "loop.pid").read_text())
    inbox = (project / ".agentctl" / "orchestrator" / "inbox" / "000001.json").read_text()
    assert "prioritise bugs" in inbox
    assert cli("chat", "--message", "stop", "--resume", "last").exit_code == 0
    deadline = time.monotonic() + 10
    while (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    ):
        assert time.monotonic() < deadline, "the orchestrator loop did not stop"
        time.sleep(0.1)
    server.assert_complete()


def test_resume_carries_the_history(project: Path, server: LLMServer, cli: Invoke) -> None:
    server.script(MAIN, Turn.text("Noted: 42."), Turn.text("It was 42."))
    assert cli("chat", "--message", "Remember the number 42.").exit_code == 0
    assert cli("chat", "--message", "Which number?", "--resume", "last").exit_code == 0
    history = json.dumps(main_requests(server)[1]["messages"])
    assert "Remember the number 42." in history and "Noted: 42." in history
    # The first chat stays ended; the resumed conversation is its child, ended too.
    second, first = RunStore(project / ".agentctl").list(kind="chat")
    assert first.record and second.record and second.record.parent_id == first.id
    assert (first.record.status, second.record.status) == ("succeeded", "succeeded")


def test_errors_are_one_clear_line(project: Path, server: LLMServer, cli: Invoke) -> None:
    server.script(MAIN, Turn.error(400, message="prompt is too long"))
    result = cli("chat", "--message", "hi")
    assert result.exit_code == 1
    assert result.stderr.startswith("agentctl: error: demo-reviewer: the request was refused")
    assert result.stderr.count("\n") == 1
    result = cli(
        "--set", 'roles.main.model="opus"', "chat", "--message", "hi", env={"ANTHROPIC_API_KEY": ""}
    )
    assert result.exit_code == 2 and "needs an API key in $ANTHROPIC_API_KEY" in result.stderr
    (chat, *_) = RunStore(project / ".agentctl").list(kind="chat")
    assert os.path.exists(chat.dir / "transcript.jsonl")
    assert any(e["type"] == "status" for e in read_journal(chat.dir / "events.jsonl").events)


def test_the_window_is_bounded_and_its_cut_moves_in_steps(project: Path) -> None:
    from agentctl.chat.session import KEEP, ChatSession
    from agentctl.config import load_config
    from agentctl.llm.types import Message
    from agentctl.workspace import find_workspace

    session = ChatSession.open(load_config(find_workspace(project)))
    starts = []
    for i in range(120):
        session.messages.append(Message("user" if i % 2 == 0 else "assistant", f"m{i}"))
        window = session._window()
        assert len(window) <= KEEP + 1
        if len(session.messages) > KEEP:
            assert window[0].content.startswith("[note from agentctl")
            starts.append(window[1].content)
    assert len(set(starts)) < len(starts) / 10  # the cut moved rarely: a stable cached prefix
    session.close()


def test_a_pipeline_run_from_the_chat_reports_back(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(
        MAIN,
        Turn.tool_call("run_pipeline", {"pipeline": "research", "task": "Why does test_add fail?"}),
        Turn.text("Started research."),
        Turn.text("It subtracts."),
    )
    server.script("demo-coder", Turn.text("add() subtracts."))
    result = cli("chat", "--message", "Find out why test_add fails", "--wait")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "pipeline research started as run" in json.dumps(main_requests(server)[1])
    assert "[report] run " in result.stdout and "(pipeline research) succeeded" in result.stdout
    server.assert_complete()


def chat_process(
    project: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``agentctl chat`` reading from a pipe, as a script would run it."""
    return subprocess.run(
        [sys.executable, "-m", "agentctl", *args],
        cwd=project,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def chat_runs(project: Path) -> list[tuple[str, str | None]]:
    """(status, reason) of each chat run, oldest first."""
    listings = RunStore(project / ".agentctl").list(kind="chat")
    return [(r.record.status, r.record.reason) for r in reversed(listings) if r.record]


def test_a_chat_left_by_quit_end_of_input_or_one_message_succeeds(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(MAIN, Turn.text("One."), Turn.text("Two."), Turn.text("Three."))
    done = chat_process(project, "chat", stdin="hello\n/quit\n")
    assert done.returncode == 0 and "One." in done.stdout, done.stderr
    done = chat_process(project, "chat", stdin="hello again\n")  # then end of input
    assert done.returncode == 0 and "Two." in done.stdout, done.stderr
    assert cli("chat", "--message", "and once more").exit_code == 0
    assert chat_runs(project) == [
        ("succeeded", "the person ended the chat (/quit)"),
        ("succeeded", "the person ended the chat (end of input)"),
        ("succeeded", None),
    ]
    assert "active runs  none" in cli("status").stdout


def test_ctrl_c_during_a_reply_cancels_the_chat(project: Path, server: LLMServer) -> None:
    server.script(MAIN, Turn.stall(after=2, seconds=30.0, text="A long answer that"))
    chat = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "chat", "--message", "Tell me a long story"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell's job: a cancel kills only it
    )
    assert chat.stdout is not None
    assert chat.stdout.read(6) == "A long"  # the reply is streaming
    time.sleep(0.2)  # waiting for the rest of the stream by now
    chat.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert chat.wait(15) == 130
    assert chat_runs(project) == [("canceled", "interrupted (Ctrl-C) during a reply")]


def test_sigint_on_a_piped_chat_mid_reply_cancels_it(project: Path, server: LLMServer) -> None:
    server.script(MAIN, Turn.stall(after=2, seconds=30.0, text="A long answer that"))
    chat = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "chat"],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell's job: a cancel kills only it
    )
    assert chat.stdin is not None and chat.stdout is not None
    chat.stdin.write("Tell me a long story\n")
    chat.stdin.flush()
    seen = ""
    while "A long" not in seen:
        seen += chat.stdout.read(1)
    time.sleep(0.2)  # waiting for the rest of the stream by now
    chat.send_signal(signal.SIGINT)
    assert chat.wait(15) == 130
    assert chat_runs(project) == [("canceled", "interrupted (Ctrl-C) during a reply")]


def test_the_message_is_positional_or_long_and_m_means_model(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(MAIN, Turn.text("Positional."))
    result = cli("chat", "fix the flaky test")
    assert result.exit_code == 0 and "Positional." in result.stdout, result.stderr
    server.script("demo-coder", Turn.text("From the coder."))
    result = cli("chat", "-m", "demo-coder", "hi")  # -m is --model, as everywhere
    assert result.exit_code == 0 and "From the coder." in result.stdout, result.stderr
    assert server.requests[-1].model == "demo-coder"
    result = cli("chat", "--message", "one", "two")
    assert result.exit_code == 2 and "give the message once" in result.stderr
    server.assert_complete()


def test_the_chat_warns_at_start_when_its_models_key_is_missing(
    project: Path, server: LLMServer
) -> None:
    done = chat_process(
        project,
        "--set",
        'roles.main.model="opus"',
        "chat",
        stdin="/quit\n",
        env={"ANTHROPIC_API_KEY": ""},
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("warning: the chat's model opus needs an API key in $ANTHROPIC_API_KEY")
    assert "export ANTHROPIC_API_KEY=..." in line and "--model" in line
    assert server.requests == []
    done = chat_process(
        project, "chat", stdin="/model opus\n/quit\n", env={"ANTHROPIC_API_KEY": ""}
    )
    assert done.returncode == 0 and done.stderr == ""  # demo-reviewer needs no key
    assert "model: opus\nwarning: the chat's model opus needs an API key" in done.stdout


def test_what_the_chat_prints_reads_as_lines_not_python(project: Path, server: LLMServer) -> None:
    from agentctl.orchestrator.home import Home

    home = Home.of(project / ".agentctl")
    home.make()
    home.outbox.post(
        {"type": "report", "summary": "1 merged", "merged": ["T-1"], "spend_today": {"dev": "0.1"}}
    )
    server.script(
        MAIN,
        Turn.tool_call("create_ticket", {"title": "Add a subtract()", "description": "needed"}),
        Turn.text("Filed."),
    )
    done = chat_process(project, "chat", stdin="/status\nfile it\n/runs\n/cost\n/quit\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert (
        "[unread report] orchestrator report: 1 merged · merged: T-1 · spend today: dev: 0.1" in out
    )
    assert "tickets      Todo 1" in out  # /status: the status screen's lines
    assert '↳ create_ticket title="Add a subtract()" description="needed"' in out
    assert "main: $" in out and "(2 calls)" in out and "total: $" in out  # /cost
    for python in ("{", "}", "None", "[]", "'"):
        assert python not in out.replace("[unread report]", ""), (python, out)


def test_sigterm_ends_a_waiting_chat_as_canceled(project: Path) -> None:
    chat = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "chat"],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell's job: a cancel kills only it
    )
    assert chat.stdout is not None
    seen = ""
    while "you> " not in seen:
        seen += chat.stdout.read(1)
    time.sleep(0.2)  # blocked in its read by now (a signal just before the read waits for it)
    chat.terminate()
    assert chat.wait(15) == 128 + signal.SIGTERM
    assert chat_runs(project) == [("canceled", "stopped by SIGTERM")]


@pytest.mark.parametrize("argv", [["--help"], ["chat", "--help"], ["chat"]])
def test_prompt_toolkit_is_imported_only_by_a_chat_at_a_terminal(
    project: Path, argv: list[str]
) -> None:
    code = (
        "import sys\nfrom agentctl.cli import main\nsys.argv = ['agentctl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('IMPORTED', 'prompt_toolkit' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=project,
        input="/quit\n",  # a pipe: the chat reads plainly
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "IMPORTED False" in done.stderr, done.stderr


def test_an_open_chat_is_alive_to_the_orchestrators_reaper(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    """A chat waits for a person for minutes; its heartbeat says it is alive, not wedged."""
    from agentctl import atomic

    LocalTracker(project / ".agentctl").set_state("T-1", "Canceled")
    chat = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "chat"],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell's job: a cancel kills only it
    )
    assert chat.stdin is not None and chat.stdout is not None
    seen = ""
    while "you> " not in seen:
        seen += chat.stdout.read(1)
    (listing,) = RunStore(project / ".agentctl").list(kind="chat")
    record = json.loads((listing.dir / "run.json").read_text())
    record["started_at"] = "2026-01-01T00:00:00.000000Z"  # opened long ago, idle since
    atomic.write_json(listing.dir / "run.json", record)
    tick = cli("--set", 'orchestrator.triage="none"', "orchestrate", "--once")
    assert tick.exit_code == 0, tick.stderr
    assert "reaped" not in tick.stdout and chat.poll() is None
    chat.stdin.write("/quit\n")
    chat.stdin.close()
    assert chat.wait(15) == 0
    assert chat_runs(project) == [("succeeded", "the person ended the chat (/quit)")]


def test_resuming_a_chat_whose_process_died_goes_on_in_it(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    server.script(MAIN, Turn.text("Noted."), Turn.text("Still here."))
    assert cli("chat", "--message", "remember 7").exit_code == 0
    (listing,) = RunStore(project / ".agentctl").list(kind="chat")
    run = RunStore(project / ".agentctl").get(listing.id)
    record = json.loads((listing.dir / "run.json").read_text())
    record.update(status="running", pid=2**22 + 7, pid_start=None, finished_at=None)  # gone
    from agentctl import atomic

    atomic.write_json(listing.dir / "run.json", record)  # as a chat killed -9 leaves it
    assert cli("chat", "--message", "which number?", "--resume", listing.id).exit_code == 0
    assert (run.load().status, run.load().pid) == ("succeeded", os.getpid())  # this process's
    assert len(RunStore(project / ".agentctl").list(kind="chat")) == 1  # went on in it
