"""The original design's first usage pattern, end to end, through a real terminal.

A person asks the main session for a fix; the main model files a ticket and
starts the orchestrator; the orchestrator runs the coding pipeline (dev, gate,
review) and merges; meanwhile the person asks something else and gets an answer;
the orchestrator's report appears in the chat unprompted, and the main model's
next reply reflects it. Then Ctrl-C during a streaming reply stops only that reply.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from tests.conftest import git
from tests.terminal import Terminal

MAIN = "demo-reviewer"
FIX = [
    Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    Turn.text("Fixed."),
]


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer) -> Path:
    root = prepare(tmp_path / "project", server, scripted=False).root
    main = root / "roles" / "main.toml"
    main.write_text(
        main.read_text()
        .replace('model = "opus"', f'model = "{MAIN}"')
        .replace('fallback = ["sonnet"]', "fallback = []")
    )
    with (root / "agentctl.toml").open("a") as config:
        config.write('\n[orchestrator]\ntriage = "model"\ninterval = "1s"\n')
    orchestrator = root / "roles" / "orchestrator.toml"  # triage on a scripted model
    orchestrator.write_text(
        orchestrator.read_text()
        .replace('model = "sonnet"', f'model = "{MAIN}"')
        .replace('fallback = ["haiku"]', "fallback = []")
    )
    git(root, "commit", "-qam", "chat e2e settings")
    LocalTracker(root / ".agentctl").set_state("T-1", "Canceled")
    return root


@pytest.mark.timeout(180)  # a whole ticket through four processes and a merge
def test_ask_for_a_fix_keep_talking_hear_back(project: Path, server: LLMServer) -> None:
    server.script_for(
        MAIN,
        "Please fix add()",
        Turn.tool_calls(
            [
                ("create_ticket", {"title": "Fix add()", "description": "add(2, 3) must be 5"}),
                ("orchestrator_start", {"interval": "1s"}),
            ]
        ),
        Turn.text("Filed it and started the orchestrator."),
        Turn.text("Paris."),
        Turn.text("Good news: the fix to add() is merged."),
    )
    server.script_for(
        MAIN,
        "New tickets follow",
        Turn.tool_call("decide", {"decisions": [{"ticket": "T-2", "action": "start"}]}),
    )
    server.script_for("demo-coder", "T-2:", *FIX)
    server.script_for(
        MAIN,
        "Review pull request",
        Turn.tool_call("finish", {"verdict": "approve", "summary": "ok", "comments": []}),
    )
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"you>")
        chat.type("Please fix add() in calc.py\n")
        chat.expect(r"(?s)Filed it and started the orchestrator\..*you>")
        chat.type("While that runs: what is the capital of France?\n")
        chat.expect(r"Paris\.")
        chat.expect(r"\[report\] orchestrator report: .*merged", timeout=50)  # unprompted
        chat.type("Any news?\n")
        chat.expect(r"Good news: the fix to add\(\) is merged\.")
        last = [r for r in server.requests if r.model == MAIN][-1].body
        assert "merged" in json.dumps(last["messages"][-2:])  # the report was in context
        chat.type("/orchestrator stop\n")
        chat.expect(r"asked the orchestrator")
        chat.type("/quit\n")
        chat.process.wait(15)
    finally:
        chat.close()
    (listing,) = RunStore(project / ".agentctl").list(kind="chat")
    assert listing.record is not None
    assert listing.record.status == "succeeded"  # left by /quit: not paused, not stale
    assert "return a + b" in (project / "calc.py").read_text()  # merged on main
    assert LocalTracker(project / ".agentctl").get("T-2").state == "Done"
    cost = subprocess.run(
        [sys.executable, "-m", "agentctl", "cost", "--run", listing.id, "--by", "role", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    roles = {row["key"] for row in json.loads(cost.stdout)["rows"]}
    assert {"main", "orchestrator", "dev", "review"} <= roles  # every tier under the chat


def test_ctrl_c_stops_the_reply_not_the_session(project: Path, server: LLMServer) -> None:
    server.script(
        MAIN, Turn.stall(after=2, seconds=30.0, text="A long answer that"), Turn.text("Still here.")
    )
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"you>")
        chat.type("Tell me a long story\n")
        chat.expect(r"A long")
        chat.type("\x03")  # Ctrl-C, through the terminal's line discipline
        chat.expect(r"(?s)\[interrupted\].*you>")
        chat.type("Are you there?\n")
        chat.expect(r"Still here\.")
        chat.type("/quit\n")
        chat.process.wait(15)
    finally:
        chat.close()
    (listing,) = RunStore(project / ".agentctl").list(kind="chat")
    transcript = (listing.dir / "transcript.jsonl").read_text()
    assert "[interrupted]" in transcript  # the partial answer is recorded as interrupted
    assert listing.record is not None
    assert listing.record.status == "succeeded"  # Ctrl-C stopped a reply; /quit ended the chat


def test_a_model_error_is_one_line_and_the_session_goes_on(
    project: Path, server: LLMServer
) -> None:
    server.script(MAIN, *[Turn.error(500, message="upstream exploded")] * 3, Turn.text("Back."))
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"you>")
        chat.type("hello\n")
        chat.expect(
            r"(?s)agentctl: error: demo-reviewer: server error: [^\n]*upstream exploded.*you>"
        )
        chat.type("hello again\n")
        chat.expect(r"Back\.")
        chat.type("/quit\n")
        chat.process.wait(15)
    finally:
        chat.close()
    assert "Traceback" not in chat.seen


def test_unread_reports_show_at_start_and_a_message_can_span_lines(
    project: Path, server: LLMServer
) -> None:
    from agentctl.orchestrator.home import Home

    home = Home.of(project / ".agentctl")
    home.make()
    home.outbox.post({"type": "report", "summary": "1 merged"})
    server.script(MAIN, Turn.text("Two lines received."))
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"\[unread report\] orchestrator report: .*1 merged")
        chat.expect(r"you>")
        chat.type("first line\\\n")
        chat.expect(r"\.\.\.")  # the continuation prompt
        chat.type("second line\n")
        chat.expect(r"Two lines received\.")
        chat.type("/quit\n")
        chat.process.wait(15)
    finally:
        chat.close()
    sent = next(r for r in server.requests if r.model == MAIN).body["messages"]
    assert "first line\nsecond line" in json.dumps(sent[-1]).replace("\\n", "\n")


LEFT, UP = "\x1b[D", "\x1b[A"
PASTE = "\x1b[200~{}\x1b[201~"  # what a terminal sends for a bracketed paste
CANARY = "sk-ant-canary-0123456789abcdef"


def _quit(chat: Terminal) -> None:
    chat.type("/quit\r")
    chat.process.wait(15)


def test_the_prompt_edits_like_a_shell_and_remembers_across_chats(
    project: Path, server: LLMServer
) -> None:
    server.script(MAIN, Turn.text("One."), Turn.text("Two."), Turn.text("Three."))
    env = {"ANTHROPIC_API_KEY": CANARY}
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project, env=env)
    try:
        chat.expect(r"you>")
        chat.type(PASTE.format(f"a pasted text\nwith the key {CANARY}\nin it") + "\r")
        chat.expect(r"(?s)One\..*you>")
        chat.type(f"helo{LEFT}l\r")  # a typo mended with the cursor keys
        chat.expect(r"(?s)Two\..*you>")
        chat.type("/sta")
        chat.expect(r" /status ")  # the completion menu
        chat.type("\t\r")  # Tab takes /status, Enter runs it
        chat.expect(r"(?s)active runs .*spend today.*you>")
        _quit(chat)
    finally:
        chat.close()
    assert "{" not in chat.seen and "None" not in chat.seen  # no Python reprs
    sent = [r.body["messages"][-1] for r in server.requests if r.model == MAIN]
    assert "a pasted text\\nwith the key [redacted]\\nin it" in str(sent[0])  # one message
    assert "'text': 'hello'" in str(sent[1])
    history = project / ".agentctl" / "chat_history"
    assert history.stat().st_mode & 0o777 == 0o600
    assert CANARY not in history.read_text() and "+with the key [redacted]" in history.read_text()
    # A second chat in the same workspace recalls the first one's messages.
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project, env=env)
    try:
        chat.expect(r"you>")
        chat.type(UP * 3 + "\r")  # /quit, /status, then hello
        chat.expect(r"(?s)Three\..*you>")
        _quit(chat)
    finally:
        chat.close()
    sent = [r.body["messages"][-1] for r in server.requests if r.model == MAIN]
    assert "'text': 'hello'" in str(sent[2])
    chats = RunStore(project / ".agentctl").list(kind="chat")
    assert [c.record.status for c in chats if c.record] == ["succeeded", "succeeded"]


def test_ctrl_c_at_an_empty_prompt_ends_the_chat_as_succeeded(
    project: Path, server: LLMServer
) -> None:
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"you>")
        chat.type("half a thought\x03")  # clears the line, as in a shell
        chat.expect(r"you>")
        chat.type("\x03")
        assert chat.process.wait(15) == 0
    finally:
        chat.close()
    (listing,) = RunStore(project / ".agentctl").list(kind="chat")
    assert listing.record is not None and listing.record.status == "succeeded"
    assert server.requests == []  # the cleared line was never sent


def test_a_report_arrives_above_the_line_being_typed(project: Path, server: LLMServer) -> None:
    from agentctl.orchestrator.home import Home

    server.script(MAIN, Turn.text("Got it."))
    chat = Terminal([sys.executable, "-m", "agentctl", "chat"], project)
    try:
        chat.expect(r"you>")
        chat.type("half a")
        chat.expect(r"half a")
        home = Home.of(project / ".agentctl")
        home.make()
        home.outbox.post({"type": "report", "summary": "1 merged", "merged": ["T-9"]})
        # The report is printed, then the prompt is drawn again below it with the text kept.
        chat.expect(r"(?s)\[report\] orchestrator report: 1 merged · merged: T-9.*you> half a")
        chat.type(" thought\r")
        chat.expect(r"Got it\.")
        _quit(chat)
    finally:
        chat.close()
    sent = [r.body["messages"][-1] for r in server.requests if r.model == MAIN]
    assert "'text': 'half a thought'" in str(sent[-1])
