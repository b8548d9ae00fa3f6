"""``agentctl demo``: the whole flow on a scratch project, with scripted models, no account.

It makes a small Python project with a failing test in a new git repository, makes
it a workspace, starts agentctl's scripted model servers on 127.0.0.1 and points
two models at them, files a local ticket, and scripts what the models will say:
the dev agent fixes the bug, the review agent asks for a test, the dev agent adds
it, the review agent approves. Everything else — processes, tools, the test gate,
the merge queue, the ticket, the ledger — is the real thing.
"""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from agentctl.commands.init import init_workspace
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker

CALC = '''\
"""A tiny calculator."""


def add(a, b):
    return a - b


def mul(a, b):
    return a * b
'''
TESTS = """\
import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
"""
NEGATIVE_TEST = """
    def test_add_negative(self):
        self.assertEqual(add(-2, -3), -5)
"""
DEMO_PIPELINE = """\
# The demo's pipeline: the feature flow, with the ticket moved at its milestones.
description = "Ticket → worktree → implement → test gate → PR → review → merge → Done"
budget_usd = 2.0

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "start"
uses = "tracker.set_state"
with = { state = "In Progress" }

[[steps]]
id = "implement"
role = "dev"
prompt = "Ticket {ticket.id}: {ticket.title}\\n\\n{ticket.description}"

[[steps]]
id = "commit"
uses = "git.commit"
with = { message = "{ticket.id}: {ticket.title}" }

[[steps]]
id = "test"
name = "test gate"
run = "{project.test_command}"
on_fail = { goto = "implement", max = 2 }

[[steps]]
id = "pr"
uses = "forge.open_pr"
with = { title = "{ticket.id}: {ticket.title}" }

[[steps]]
id = "review"
role = "review"
prompt = "Review pull request {steps.pr.pr} ({steps.worktree.branch}) for: {ticket.title}"
on_fail = { goto = "implement", max = 2 }

[[steps]]
id = "merge"
uses = "forge.merge"
on_fail = { goto = "implement", max = 1 }

[[steps]]
id = "done"
uses = "tracker.set_state"
with = { state = "Done" }
"""


@dataclass(frozen=True, slots=True)
class Demo:
    root: Path
    ticket: str


def config_text(server: LLMServer) -> str:
    return textwrap.dedent(
        f"""\
        # agentctl demo: the models below are SCRIPTED (agentctl.testing), not real.
        [project]
        test_command = "python -m unittest -q"
        base_branch = "main"

        [models.demo-coder]
        provider = "openai"
        api = "chat"
        name = "demo-coder"
        base_url = "{server.openai_url}"
        max_tokens = 4096
        # priced like a mid-size hosted model, so the cost table has something to say
        price = {{ input = 0.6, output = 2.4 }}

        [models.demo-reviewer]
        provider = "anthropic"
        name = "demo-reviewer"
        base_url = "{server.anthropic_url}"
        api_key_env = ""
        max_tokens = 4096
        price = {{ input = 2.0, output = 10.0, cache_write = 2.5, cache_read = 0.1 }}
        """
    )


def script(server: LLMServer) -> None:
    """What the scripted models will say, in order."""
    run_tests = {"command": "python -m unittest -q 2>&1 | tail -3"}
    server.script(
        "demo-coder",
        Turn.tool_call("read", {"path": "calc.py"}, text="Let me look at add()."),
        Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
        Turn.tool_call("bash", run_tests),
        Turn.text("add() subtracted instead of adding. Fixed it; the tests pass."),
        Turn.tool_call(
            "edit",
            {
                "path": "test_calc.py",
                "old": "    def test_mul(self):",
                "new": NEGATIVE_TEST.lstrip("\n") + "\n    def test_mul(self):",
            },
            text="Adding the test the reviewer asked for.",
        ),
        Turn.tool_call("bash", run_tests),
        Turn.text("Added test_add_negative; all tests pass."),
    )
    server.script(
        "demo-reviewer",
        Turn.tool_call("git_diff", {}, text="Reading the diff."),
        Turn.tool_call(
            "finish",
            {
                "verdict": "request_changes",
                "summary": "The fix is right, but nothing guards negative numbers.",
                "comments": [
                    {
                        "file": "test_calc.py",
                        "line": 8,
                        "body": "Add a test for add() with negative numbers.",
                    }
                ],
            },
        ),
        Turn.tool_call("git_diff", {}),
        Turn.tool_call(
            "finish",
            {"verdict": "approve", "summary": "Fix and tests look good.", "comments": []},
        ),
    )


def scripted_models() -> LLMServer:
    """The demo's model server on 127.0.0.1 (scripted; the one product use of ``testing``)."""
    return LLMServer()


def prepare(directory: Path, server: LLMServer, *, scripted: bool = True) -> Demo:
    """The scratch project, its workspace, the ticket and (``scripted``) the script."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(args, cwd=directory, check=True, capture_output=True)

    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.name", "agentctl demo")
    run("git", "config", "user.email", "demo@agentctl.invalid")
    (directory / "calc.py").write_text(CALC)
    (directory / "test_calc.py").write_text(TESTS)
    (directory / "README.md").write_text("# calc\n\nA tiny calculator with a bug.\n")
    run("git", "add", ".")
    run("git", "commit", "-q", "-m", "A calculator (add() has a bug)")
    init_workspace(directory, test_command="python -m unittest -q", base_branch="main")
    (directory / "agentctl.toml").write_text(config_text(server))
    for role, model in (("dev", "demo-coder"), ("review", "demo-reviewer")):
        path = directory / "roles" / f"{role}.toml"
        lines = path.read_text().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.startswith("model = "):
                lines[i] = f'model = "{model}"\n'
            elif line.startswith("fallback = "):
                lines[i] = "fallback = []\n"
        path.write_text("".join(lines))
    (directory / "pipelines" / "demo.toml").write_text(DEMO_PIPELINE)
    run("git", "add", ".")
    run("git", "commit", "-q", "-m", "agentctl workspace")
    ticket = LocalTracker(directory / ".agentctl").add(
        "add() returns the wrong sum",
        description="calc.add(2, 3) returns -1; it must return 5. test_calc fails.",
        labels=("bug",),
    )
    if scripted:
        script(server)
    return Demo(directory, ticket.id)
