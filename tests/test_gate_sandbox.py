"""Gates and agents' bash under the sandbox policy, through the real CLI and real processes.

A hostile test (a gate runs code an agent wrote) must not read the keys of the
processes around it, the ledger or other runs, write outside its worktree or reach
the network; strict bash in the workspace root must not touch agentctl's own state
and configuration; and the real toolchains must still work inside.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.tools import sandbox
from agentctl.tools.sandbox import bwrap_available
from agentctl.tools.toolbox import Toolbox
from tests.conftest import Invoke, git

needs_bwrap = pytest.mark.skipif(
    not bwrap_available(), reason=f"bubblewrap cannot run here: {sandbox.bwrap_status()[1]}"
)

GATE_PIPELINE = """\
description = "a worktree, then one gate: the task is the command"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "gate"
run = "{inputs.task}"
"""


def set_project(workspace: Path, **keys: object) -> None:
    """Add keys to the [project] table of the workspace's agentctl.toml."""
    config = workspace / "agentctl.toml"
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    kept = [line for line in config.read_text().splitlines(True) if line.split(" =")[0] not in keys]
    config.write_text("".join(kept).replace("[project]\n", f"[project]\n{lines}", 1))


@pytest.fixture
def ws(workspace: Path) -> Path:
    """An initialised workspace whose gates are strict, with a `gate` pipeline."""
    set_project(workspace, gate_sandbox="strict")
    (workspace / "pipelines" / "gate.toml").write_text(GATE_PIPELINE)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "agentctl")
    return workspace


def run_gate(cli: Invoke, ws: Path, command: str) -> tuple[int, dict[str, object], Path]:
    """Run the `gate` pipeline with ``command``; its exit code, the gate's output and run dir."""
    result = cli("pipeline", "run", "gate", "--task", command, cwd=ws)
    store = RunStore(ws / ".agentctl")
    steps = [
        store.get(listing.id)
        for listing in store.list(kind="step")
        if store.get(listing.id).read_input().get("step") == "gate"
    ]
    assert len(steps) == 1, result.stdout + result.stderr
    step = steps[0]
    return result.exit_code, step.read_output() or {}, step.dir


@pytest.fixture
def bystander() -> Iterator[str]:
    """Another process of this user with a key in its environment (like agentctl's own)."""
    canary = f"sk-bystander-{secrets.token_hex(8)}"
    proc = subprocess.Popen(
        ["sleep", "60"], env={"PATH": os.environ["PATH"], "BYSTANDER_KEY": canary}
    )
    yield canary
    proc.kill()
    proc.wait()


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def probe(ws: Path, port: int, outside: Path) -> str:
    """A hostile gate: one LEAK line per thing it could do that it must not."""
    state = ws / ".agentctl"
    return "\n".join(
        [
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q BYSTANDER_KEY="
            " && echo LEAK-environ",
            f"cat {state}/ledger/* 2>/dev/null | grep -q LEDGER-SECRET && echo LEAK-ledger",
            f"cat {state}/runs/*/events.jsonl 2>/dev/null | grep -q step && echo LEAK-runs",
            # (checked from outside: under /tmp these land in the sandbox's own tmpfs)
            f"echo pwned > {ws}/pwned.txt; echo pwned >> {ws}/agentctl.toml",
            f"(echo pwned > {outside}) 2>/dev/null && echo LEAK-write-outside",
            f"(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo LEAK-network",
            "echo HOME=$HOME",
            "touch $HOME/made && echo home-writable",
            "echo probe-done",
        ]
    )


@needs_bwrap
def test_a_strict_gate_reads_no_keys_ledger_or_runs_writes_nothing_and_has_no_network(
    ws: Path, cli: Invoke, bystander: str, listener: int, tmp_path: Path
) -> None:
    (ws / ".agentctl" / "ledger").mkdir(parents=True, exist_ok=True)
    (ws / ".agentctl" / "ledger" / "2026-01-01.jsonl").write_text('{"note": "LEDGER-SECRET"}\n')
    config_before = (ws / "agentctl.toml").read_text()
    outside = Path("/var/tmp") / f"agentctl-gate-{secrets.token_hex(6)}"
    code, output, step_dir = run_gate(cli, ws, probe(ws, listener, outside))
    text = str(output.get("output", ""))
    assert code == 0, text
    assert "probe-done" in text
    assert "LEAK" not in text, text
    assert bystander not in text
    assert not (ws / "pwned.txt").exists() and not outside.exists()
    assert (ws / ".agentctl" / "ledger" / "2026-01-01.jsonl").exists()
    assert (ws / "agentctl.toml").read_text() == config_before
    # Its home was a folder of its own run, writable, and is gone afterwards.
    (home,) = [line[5:] for line in text.splitlines() if line.startswith("HOME=")]
    assert Path(home) == step_dir.resolve() / "home"
    assert "home-writable" in text
    assert not Path(home).exists()
    assert output.get("sandboxed") is True


@needs_bwrap
def test_gate_network_true_lets_a_gate_reach_the_network(
    ws: Path, cli: Invoke, listener: int
) -> None:
    set_project(ws, gate_network=True)
    code, output, _ = run_gate(cli, ws, f"exec 3<>/dev/tcp/127.0.0.1/{listener} && echo connected")
    assert code == 0, output
    assert "connected" in str(output["output"])


def no_bwrap_path(tmp_path: Path) -> str:
    """A PATH with what a pipeline needs (git, bash, sh...) but no bubblewrap."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "git", "true", "env", "cat", "echo", "python", "python3"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("strict", "needs the bubblewrap sandbox"),
        ("auto", "would run commands as root without a sandbox"),
    ],
)
def test_without_bubblewrap_strict_and_root_auto_refuse_the_gate_in_one_line(
    ws: Path, cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, expect: str
) -> None:
    if mode == "auto" and os.geteuid() != 0:
        pytest.skip("the root rule applies to root only; see the injected test below")
    set_project(ws, gate_sandbox=mode)
    monkeypatch.setenv("PATH", no_bwrap_path(tmp_path))
    marker = ws / "ran.txt"
    code, output, _ = run_gate(cli, ws, f"echo ran > {marker}")
    assert code == 1
    reason = str(output["output"])
    assert expect in reason and "apt-get install bubblewrap" in reason
    assert "\n" not in reason.strip()
    assert not marker.exists()


def test_a_refused_gate_fails_the_pipeline_without_sending_the_agent_round_again(
    tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No attempt can pass a gate the policy refuses: ``on_fail`` sends no dev round."""
    from agentctl.commands.demo import prepare

    with LLMServer() as server:
        project = prepare(tmp_path / "project", server, scripted=False).root
        set_project(project, gate_sandbox="strict")
        git(project, "commit", "-qam", "strict gates")
        server.script(
            "demo-coder",
            Turn.tool_call("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"}),
            Turn.text("Fixed."),
        )
        monkeypatch.setenv("PATH", no_bwrap_path(tmp_path))
        result = cli("pipeline", "run", "feature", "--task", "Fix add()", cwd=project)
        assert result.exit_code == 1
        assert "step 'test' failed: " in result.stdout
        assert "needs the bubblewrap sandbox" in result.stdout
        assert "back to implement" not in result.stderr
        server.assert_complete()  # one dev round, and no second one


def test_explicit_none_runs_a_gate_as_root_without_bubblewrap(
    ws: Path, cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_project(ws, gate_sandbox="none")
    monkeypatch.setenv("PATH", no_bwrap_path(tmp_path))
    code, output, step_dir = run_gate(cli, ws, "echo home=$HOME")
    assert code == 0, output
    assert f"home={step_dir.resolve() / 'home'}" in str(output["output"])
    assert output.get("sandboxed") is False


def test_auto_as_root_without_bubblewrap_refuses_bash_and_gates() -> None:
    """Injected host: root, no bubblewrap. ``auto`` refuses, ``none`` runs, a user runs."""
    from agentctl.tools.gate import GateSandbox, run_gate

    def unavailable() -> tuple[bool, str]:
        return False, "bwrap unavailable"

    root = sandbox.Host(bwrap=unavailable, euid=lambda: 0)
    user = sandbox.Host(bwrap=unavailable, euid=lambda: 1000)
    here = Path.cwd()
    refused = Toolbox(here, ["bash"], sandbox="auto", host=root).run(
        "bash", {"command": "echo ran"}
    )
    assert refused.is_error
    assert "as root without a sandbox (bwrap unavailable)" in refused.content
    assert 'sandbox = "none" in the role' in refused.content
    assert "ran" not in refused.content.replace("refused", "")
    for host in (user,):
        ran = Toolbox(here, ["bash"], sandbox="auto", host=host).run(
            "bash", {"command": "echo ran"}
        )
        assert ran.content == "exit code 0\nran\n"
    explicit = Toolbox(here, ["bash"], sandbox="none", host=root).run(
        "bash", {"command": "echo ran"}
    )
    assert explicit.content == "exit code 0\nran\n"
    gate = run_gate(
        "echo ran", here, home=here / "unused", timeout=10, policy=GateSandbox(host=root)
    )
    assert gate.refused and not gate.passed
    assert 'gate_sandbox = "none" in [project]' in gate.output


@needs_bwrap
def test_a_gate_in_a_worktree_reads_the_main_checkout_but_not_its_state(
    ws: Path, cli: Invoke
) -> None:
    """An editable install points into the main checkout: shown read-only, state hidden."""
    command = (
        f"cat {ws}/README.md; (echo x >> {ws}/README.md) 2>/dev/null && echo LEAK-write; "
        f"cat {ws}/.agentctl/runs/*/events.jsonl 2>/dev/null | grep -q . && echo LEAK-state; "
        "echo gate-done"
    )
    code, output, _ = run_gate(cli, ws, command)
    assert code == 0, output
    text = str(output["output"])
    assert "# demo" in text and "gate-done" in text
    assert "LEAK" not in text
    assert (ws / "README.md").read_text() == "# demo\n"


def test_a_gate_never_runs_a_stale_bytecode_cache(tmp_path: Path) -> None:
    """A ``.pyc`` from before a same-size edit in the same second must not stand in for it."""
    import py_compile

    from agentctl.tools.gate import GateSandbox, run_gate

    tree = tmp_path / "tree"
    tree.mkdir()
    module = tree / "m.py"
    module.write_text("X = 1\n")
    stamp = module.stat().st_mtime_ns
    py_compile.compile(str(module), cfile=str(tree / "__pycache__" / "m.cpython-311.pyc"))
    py_compile.compile(str(module))  # where this interpreter looks, whatever its version
    module.write_text("X = 2\n")  # same size, and the same mtime: the cache looks current
    os.utime(module, ns=(stamp, stamp))
    command = f"{sys.executable} -c 'import m; print(\"X =\", m.X)'"
    done = run_gate(
        command, tree, home=tmp_path / "home", timeout=30, policy=GateSandbox(mode="none")
    )
    assert done.exit_code == 0, done.output
    assert "X = 2" in done.output, done.output


# -- an agent's bash in the workspace root, driven by a scripted model -------------------------

HOSTILE_BASH = "\n".join(
    [
        "(echo x > .agentctl/x) 2>/dev/null && echo LEAK-state-write",
        "(echo x >> agentctl.toml) 2>/dev/null && echo LEAK-config-write",
        "(echo x > roles/dev.toml) 2>/dev/null && echo LEAK-roles-write",
        "(echo x >> HEARTBEAT.md) 2>/dev/null && echo LEAK-heartbeat-write",
        "ls .agentctl/runs >/dev/null 2>&1 && echo LEAK-runs-list",
        "cat .agentctl/runs/*/transcript.jsonl 2>/dev/null | grep -q . && echo LEAK-transcript",
        "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q BYSTANDER_KEY="
        " && echo LEAK-environ",
        "echo x > work.txt && echo wrote-work",
        "echo bash-done",
    ]
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    with LLMServer(api_key="sk-model-canary") as running:
        monkeypatch.setenv("TEST_KEY", "sk-model-canary")
        yield running


def scripted_dev(workspace: Path, server: LLMServer) -> None:
    """The dev role on the scripted model, bash only, strict."""
    config = workspace / "agentctl.toml"
    config.write_text(
        config.read_text() + f'\n[models.scripted]\nprovider = "openai"\nname = "chat-x"\n'
        f'base_url = "{server.openai_url}"\napi_key_env = "TEST_KEY"\nmax_retries = 0\n'
        "price = { input = 1.0, output = 2.0 }\n"
    )
    (workspace / "roles").mkdir(exist_ok=True)
    (workspace / "roles" / "dev.toml").write_text(
        'description = "dev"\nmodel = "scripted"\nprompt = "work"\n'
        'tools = ["bash"]\nsandbox = "strict"\nbash_timeout = 240\n'
    )


def agent_bash(cli: Invoke, workspace: Path, server: LLMServer, command: str) -> str:
    """A dev agent run in the workspace root whose model runs ``command``: the tool result."""
    server.script("chat-x", Turn.tool_call("bash", {"command": command}), Turn.text("done"))
    result = cli("agent", "run", "dev", "run it", cwd=workspace)
    assert result.exit_code == 0, result.stdout + result.stderr
    return str(server.requests[-1].body["messages"][-1]["content"])


@needs_bwrap
def test_strict_bash_in_the_workspace_root_cannot_touch_agentctl_state_or_config(
    workspace: Path, cli: Invoke, bystander: str, server: LLMServer
) -> None:
    scripted_dev(workspace, server)
    config = workspace / "agentctl.toml"
    watched = (config, workspace / "roles" / "dev.toml", workspace / "HEARTBEAT.md")
    before = {p: p.read_text() for p in watched}
    server.script("chat-x", Turn.text("first run"))  # a run whose transcript is there to steal
    assert cli("agent", "run", "dev", "warm up", cwd=workspace).exit_code == 0
    tool_result = agent_bash(cli, workspace, server, HOSTILE_BASH)
    server.assert_complete()
    assert "bash-done" in tool_result and "wrote-work" in tool_result
    assert "LEAK" not in tool_result, tool_result
    assert bystander not in tool_result
    assert not (workspace / ".agentctl" / "x").exists()
    assert {p: p.read_text() for p in before} == before
    assert (workspace / "work.txt").read_text() == "x\n"
    assert not (workspace / ".agentctl" / "homes").exists() or not any(
        (workspace / ".agentctl" / "homes").iterdir()
    )


# -- toolchains under strict ----------------------------------------------------------------

GO = {
    "go.mod": "module example.com/t\n\ngo 1.19\n",
    "t.go": "package t\n\nfunc Add(a, b int) int { return a + b }\n",
    "t_test.go": 'package t\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n'
    '\tif Add(2, 3) != 5 {\n\t\tt.Fatal("add")\n\t}\n}\n',
}
NPM = {
    "package.json": json.dumps(
        {"name": "t", "version": "1.0.0", "private": True, "scripts": {"test": "node test.js"}}
    ),
    "index.js": "module.exports = (a, b) => a + b;\n",
    "test.js": "const assert = require('assert');\nassert.strictEqual(require('./index')(2, 3), 5);"
    "\nconsole.log('node tests ok');\n",
}
CARGO = {
    "Cargo.toml": '[package]\nname = "t"\nversion = "0.1.0"\nedition = "2021"\n',
    "src/lib.rs": "pub fn add(a: i32, b: i32) -> i32 { a + b }\n\n#[cfg(test)]\nmod tests {\n"
    "    #[test]\n    fn adds() { assert_eq!(super::add(2, 3), 5); }\n}\n",
}
PYTEST = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


def project_venv(where: Path) -> Path:
    """A virtualenv outside the workspace with pytest in it, made offline."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, site / origin.parent.name)
        else:
            shutil.copy(origin, site / origin.name)
    return venv


def needs(tool: str) -> pytest.MarkDecorator:
    """Skip where ``tool`` is missing, except in CI (``.ci/run`` installs it: it must run)."""
    missing = shutil.which(tool) is None and os.environ.get("CI") != "true"
    return pytest.mark.skipif(missing, reason=f"{tool} is not installed (.ci/run installs it)")


TOOLCHAINS = [
    pytest.param(GO, "go test ./...", "ok", marks=needs("go"), id="go"),
    pytest.param(NPM, "npm test", "node tests ok", marks=needs("npm"), id="npm"),
    pytest.param(CARGO, "cargo test", "test result: ok", marks=needs("cargo"), id="cargo"),
    pytest.param(PYTEST, None, "1 passed", id="pytest"),
]


@needs_bwrap
@pytest.mark.parametrize(("files", "command", "expect"), TOOLCHAINS)
def test_toolchains_work_as_strict_gates_and_in_strict_bash(
    ws: Path,
    cli: Invoke,
    server: LLMServer,
    tmp_path: Path,
    files: dict[str, str],
    command: str | None,
    expect: str,
) -> None:
    if command is None:  # the project's venv lives in a temporary folder outside the workspace
        venv = project_venv(tmp_path / "outside")
        command = f"{venv}/bin/python -m pytest -q -p no:cacheprovider"
    set_project(ws, test_command=command)
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "project")
    code, output, _ = run_gate(cli, ws, command)
    assert code == 0, output
    assert output.get("sandboxed") is True
    assert expect in str(output["output"])
    # A dev agent's strict bash in the same workspace sees the same toolchain.
    scripted_dev(ws, server)
    seen = agent_bash(cli, ws, server, command)
    assert seen.startswith("exit code 0\n"), seen
    assert expect in seen


# -- doctor ----------------------------------------------------------------------------------


def test_doctor_says_root_without_a_sandbox_refuses_to_run_commands(
    workspace: Path, cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the root rule applies to root only; see the injected test below")
    monkeypatch.setenv("PATH", no_bwrap_path(tmp_path))
    sandbox.bwrap_status.cache_clear()
    try:
        result = cli("doctor", "--json", cwd=workspace)
    finally:
        monkeypatch.undo()
        sandbox.bwrap_status.cache_clear()
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["sandbox"]["status"] == "fail"
    assert "runs as root" in checks["sandbox"]["detail"]
    assert 'sandbox = "none" in the role' in checks["sandbox"]["hint"]
    assert result.exit_code == 1


def test_doctor_root_rule_with_an_injected_host(workspace: Path) -> None:
    from agentctl.commands.doctor import run_doctor
    from agentctl.config import load_config
    from agentctl.workspace import find_workspace

    def unavailable() -> tuple[bool, str]:
        return False, "bwrap unavailable"

    found = find_workspace(workspace)
    for euid, status in ((0, "fail"), (1000, "warn")):
        report = run_doctor(
            lambda: found,
            lambda: load_config(found),
            environ={},
            host=sandbox.Host(bwrap=unavailable, euid=lambda euid=euid: euid),  # type: ignore[misc]
        )
        (check,) = [c for c in report.checks if c.name == "sandbox"]
        assert check.status == status, check
