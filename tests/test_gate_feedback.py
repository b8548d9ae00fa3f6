"""What a red gate sends back to the dev agent, and how failures read on one line.

The extractor is checked on real output of real tools run here (pytest, unittest,
go test, cargo test); the pipeline tests drive a scripted dev model through the real
CLI and read what the model server received.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.cli.pipeline_view import PipelineView
from agentctl.commands.demo import prepare
from agentctl.runs import RunStore, read_journal
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.tools.feedback import bound, extract, gate_feedback, one_line
from tests.conftest import Invoke, git

MANY = "".join(
    f"\n\ndef test_{i:03d}():\n    assert double({i}) == {2 * i}, 'double({i})'\n"
    for i in range(100)
)
MANY_TESTS = f"def double(n):\n    return n - 1{MANY}"
UNITTEST_MANY = "import unittest\n\n\nclass T(unittest.TestCase):\n" + "".join(
    f"    def test_{i:03d}(self):\n        self.assertEqual({i} + 1, {2 * i})\n" for i in range(100)
)


def ran(argv: list[str], cwd: Path) -> tuple[int, str]:
    """The exit code and output (stderr into stdout, in order, as a gate sees it)."""
    done = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    return done.returncode, done.stdout


# -- the extractor on real output ----------------------------------------------------


def test_pytest_first_failure_and_summary(tmp_path: Path) -> None:
    (tmp_path / "test_many.py").write_text(MANY_TESTS)
    code, output = ran([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert code == 1 and len(output) > 10_000
    found = extract(output)
    assert found.tool == "pytest"
    assert found.first.startswith("_") and "test_000" in found.first.splitlines()[0]
    assert "assert double(0) == 0" in found.first and "test_001" not in found.first
    assert found.summary.startswith("100 failed in ")
    text = gate_feedback("python -m pytest -q", code, output)
    assert text.startswith("`python -m pytest -q` exited 1: 100 failed in ")
    assert len(text) <= 4000 and "assert double(0) == 0" in text
    assert "test_050" not in text  # not the wall of one-line summaries


def test_pytest_collection_error_is_the_first_failure(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text("import no_such_module_here\n")
    code, output = ran([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    found = extract(output)
    assert code == 2 and found.tool == "pytest"
    assert "ERROR collecting" in found.first and "no_such_module_here" in found.first
    assert "1 error" in found.summary


def test_unittest_first_failure_and_summary(tmp_path: Path) -> None:
    (tmp_path / "test_many.py").write_text(UNITTEST_MANY)
    code, output = ran([sys.executable, "-m", "unittest", "-q"], tmp_path)
    found = extract(output)
    assert code == 1 and found.tool == "unittest"
    assert found.first.startswith("FAIL: test_000")
    assert "self.assertEqual(0 + 1, 0)" in found.first and "AssertionError: 1 != 0" in found.first
    assert "test_001" not in found.first and "=====" not in found.first
    assert "FAILED (failures=99)" in found.summary and "Ran 100 tests" in found.summary


GO_PACKAGES = {
    "a/a_test.go": """package a

import "testing"

func TestSub(t *testing.T) {
\tt.Run("one", func(t *testing.T) { t.Errorf("sub one: got %d, want %d", 1, 2) })
\tt.Run("two", func(t *testing.T) {})
}

func TestOther(t *testing.T) { t.Fatal("other broke") }
""",
    "b/b_test.go": """package b

import "testing"

func TestPanics(t *testing.T) {
\tvar m map[string]int
\tm["x"] = 1
}
""",
    "c/c_test.go": """package c

import "testing"

func TestBuild(t *testing.T) { undefinedThing() }
""",
}


@pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed")
def test_go_test_first_failure_and_summary(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n\ngo 1.19\n")
    for name, text in GO_PACKAGES.items():
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_text(text)
    home = tmp_path / "home"

    def go_test(package: str) -> tuple[int, str]:
        argv = ["env", f"HOME={home}", f"GOCACHE={home}/cache", "go", "test", package]
        return ran(argv, tmp_path)

    code, output = go_test("./...")
    found = extract(output)
    assert code != 0 and found.tool == "go test"
    assert found.first.splitlines()[0] == "--- FAIL: TestSub (0.00s)"
    assert "--- FAIL: TestSub/one" in found.first and "sub one: got 1, want 2" in found.first
    assert "other broke" not in found.first and "TestPanics" not in found.first
    assert found.summary.startswith("FAIL\texample.com/m/a")
    assert "FAIL\texample.com/m/c [build failed]" in found.summary
    text = gate_feedback("go test ./...", code, output)
    assert text.startswith(f"`go test ./...` exited {code}: FAIL example.com/m/a")

    code, output = go_test("./b")  # a panic: its message and stack belong to the failure
    found = extract(output)
    assert found.first.startswith("--- FAIL: TestPanics")
    assert "panic: assignment to entry in nil map" in found.first and "b_test.go:7" in found.first

    code, output = go_test("./c")  # it does not build: the compiler's first error
    found = extract(output)
    assert found.tool == "" and found.first.startswith("c/c_test.go:5:")
    assert "undefined: undefinedThing" in found.first.splitlines()[0]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_cargo_test_first_failure_and_summary(tmp_path: Path) -> None:
    crate = tmp_path / "c"
    (crate / "src").mkdir(parents=True)
    manifest = '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n'
    (crate / "Cargo.toml").write_text(manifest)
    (crate / "src" / "lib.rs").write_text(
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn a() { assert_eq!(1, 2); }\n}\n"
    )
    code, output = ran(
        ["env", "RUST_BACKTRACE=0", f"CARGO_TARGET_DIR={tmp_path}/target", "cargo", "test",
         "--offline", "-q"],
        crate,
    )  # fmt: skip
    found = extract(output)
    assert code == 101 and found.tool == "cargo test"
    assert found.first.splitlines()[0] == "---- tests::a stdout ----"
    assert "assertion `left == right` failed" in found.first and "test result" not in found.first
    assert found.summary.startswith("test result: FAILED. 0 passed; 1 failed")


def test_other_tools_get_their_first_error_looking_lines() -> None:
    output = "building...\nok step 1\nmake: *** [all] Error 2\nmore detail\n"
    found = extract(output)
    assert found.tool == "" and found.first.startswith("make: *** [all] Error 2")
    assert "building" not in found.first


def test_bound_keeps_whole_lines_head_and_tail_and_says_what_it_cut() -> None:
    lines = [f"line {i:04d} " + "x" * 50 for i in range(1000)]
    text = bound("\n".join(lines), 2000)
    assert len(text) <= 2000
    kept = text.splitlines()
    assert kept[0] == lines[0] and kept[-1] == lines[-1]
    cut = [line for line in kept if line.startswith("[… ")]
    assert len(cut) == 1 and "lines" in cut[0] and "cut" in cut[0]
    assert all(line in lines or line == cut[0] for line in kept)  # no line starts mid-way
    assert one_line("a\n  b\n\nc", 80) == "a b c"
    assert one_line("y" * 500, 100) == "y" * 99 + "…"


def test_the_live_table_folds_a_failure_and_shows_a_round_of_changes() -> None:
    view = PipelineView("pipeline p · run R", [("test", "run"), ("review", "role")])
    failure = "`pytest -q` exited 1: 100 failed in 0.3s\n\nFirst failure (pytest):\n___ t ___"
    back = {"type": "step.goto", "to": "implement", "count": 1}
    view.apply({**back, "step": "test", "failure": failure})
    asked = "review requested changes:\nAdd a test.\n- calc.py:3: here"
    view.apply({**back, "step": "review", "reason": "changes_requested", "failure": asked})
    test, review = view.rows["test"], view.rows["review"]
    said = "`pytest -q` exited 1: 100 failed in 0.3s First failure (pyt…"
    assert test.note == f"→ implement (1): {said}"
    assert review.note.startswith("changes requested → round 2: Add a test.")
    assert review.status == "changes" and "\n" not in review.note


# -- through the pipeline ------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    demo = prepare(tmp_path / "project", server, scripted=False)
    monkeypatch.chdir(demo.root)
    return demo.root


@pytest.mark.timeout(300)
def test_a_red_gate_with_100_failures_sends_the_first_traceback(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider test_many.py"
    toml = project / "agentctl.toml"
    toml.write_text(toml.read_text().replace('"python -m unittest -q"', json.dumps(command)))
    (project / "test_many.py").write_text(MANY_TESTS)
    git(project, "add", ".")
    git(project, "commit", "-qm", "100 failing tests")
    attempts = [
        Turn.tool_call("write", {"path": f"note{i}.txt", "content": "not a fix"}) for i in range(3)
    ]
    server.script("demo-coder", *[t for a in attempts for t in (a, Turn.text("done?"))])
    result = cli("pipeline", "run", "feature", "--task", "Fix double()")
    assert result.exit_code == 1, result.stdout + result.stderr

    prompt = [r for r in server.requests if r.model == "demo-coder"][2].body["messages"][1]
    content = str(prompt["content"])
    part = content[content.index("Step 'test' failed with:\n\n") :]
    lines = part.splitlines()
    assert lines[2] == f"`{command}` exited 1: 100 failed in " + lines[2].split(" in ")[-1]
    assert "assert double(0) == 0" in part  # the first failure's traceback
    assert "E       AssertionError: double(0)" in part
    assert "100 failed in " in part  # the summary
    assert len(part) < 4500  # bounded: the raw output is far longer
    # the live lines and the reason: one line each, with the command, exit and summary
    goto = [line for line in result.stderr.splitlines() if line.startswith("↺ test failed")]
    assert goto and "` exited 1: 100 failed in" in goto[0]
    listed = cli("runs", "list", "--kind", "pipeline", env={"COLUMNS": "400"})
    (row,) = listed.stdout.splitlines()[1:]
    assert "exited 1: 100 failed in" in row and "\\x0a" not in row  # folded, not escaped


@pytest.mark.timeout(300)
def test_a_review_asking_for_changes_is_the_next_round(
    project: Path, server: LLMServer, cli: Invoke
) -> None:
    fix = Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"})
    test = Turn.tool_call("write", {"path": "test_neg.py", "content": "# negatives\n"})
    server.script("demo-coder", fix, Turn.text("Fixed."), test, Turn.text("Added."))
    changes = {"verdict": "request_changes", "summary": "Test negatives.", "comments": []}
    approve = {"verdict": "approve", "summary": "Good.", "comments": []}
    server.script(
        "demo-reviewer", Turn.tool_call("finish", changes), Turn.tool_call("finish", approve)
    )
    result = cli("pipeline", "run", "feature", "--task", "Fix add()")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "↺ review: changes requested → round 2: Test negatives." in result.stderr
    assert "review failed" not in result.stderr
    (run,) = RunStore(project / ".agentctl").list(kind="pipeline")
    gotos = [e for e in read_journal(run.dir / "events.jsonl").events if e["type"] == "step.goto"]
    assert [(e["step"], e["reason"]) for e in gotos] == [("review", "changes_requested")]
    server.assert_complete()
