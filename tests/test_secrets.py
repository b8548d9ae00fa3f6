"""Keys live in no environment below the command the user started, and nothing written
or sent holds one: real processes, a real pipeline, scripted models on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from agentctl import keystore
from agentctl.commands.demo import prepare
from agentctl.redact import MARK, Redactor
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn
from tests.conftest import Invoke, git

LINUX = sys.platform.startswith("linux")
SYSTEM_PYTHON = "/usr/bin/python3"


def canary(prefix: str) -> str:
    return f"{prefix}-canary-{secrets.token_hex(16)}"


def encodings(secret: str) -> list[str]:
    """What a hostile command prints instead of the key (computed here, not by agentctl),
    each cut to an inner piece that no redaction leaves standing."""
    raw = secret.encode()
    forms = [secret, secret[::-1], quote(secret, safe=""), raw.hex()]
    for pad in (b"", b"x", b"xy", b"xyz"):
        forms.append(base64.b64encode(pad + raw).decode()[4:-4])
        forms.append(base64.urlsafe_b64encode(pad + raw).decode()[4:-4])
    return forms


def leaks(text: str, keys: list[str]) -> list[str]:
    return [form for key in keys for form in encodings(key) if form in text]


# -- the redactor ------------------------------------------------------------------------


def test_the_redactor_takes_out_every_common_encoding_of_a_key() -> None:
    key = canary("sk")
    redact = Redactor([key])
    raw = key.encode()
    printed = [
        f"rev: {key[::-1]}",
        f"url: {quote(key, safe='')}",
        f"hex: {raw.hex()} HEX: {raw.hex().upper()}",
        *(
            f"b64 {len(p)}: {base64.b64encode(p + raw + b'tail').decode()}"
            for p in (b"", b"x", b"xy")
        ),
        *(f"url64: {base64.urlsafe_b64encode(p + raw).decode()}" for p in (b"", b"ab", b"abc")),
        "wrapped:\n" + base64.encodebytes(b"A" * 50 + raw).decode(),
    ]
    for line in printed:
        out = redact(line)
        assert MARK in out and not leaks(out, [key]), (line, out)
    assert redact("nothing to see here\nat all") == "nothing to see here\nat all"


def test_every_command_output_is_redacted_at_the_source(tmp_path: Path) -> None:
    from agentctl.tools import shell

    key = canary("sk")
    keystore.load(["SOME_KEY"], environ={"SOME_KEY": key})
    (tmp_path / "found.txt").write_text(key)  # a command cannot get it from its environment
    script = "cat found.txt; echo; rev found.txt; echo; (printf ab; cat found.txt) | base64"
    done = shell.run(
        ["bash", "-c", script], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, timeout=10
    )
    assert done.exit_code == 0 and done.output.count(MARK) == 3, done.output
    assert not leaks(done.output, [key])


def test_every_run_directory_writer_redacts_as_the_last_line_of_defence(tmp_path: Path) -> None:
    key = canary("sk")
    keystore.load(["SOME_KEY"], environ={"SOME_KEY": key})
    hidden = base64.b64encode(b"x" + key.encode()).decode()
    store = RunStore(tmp_path / ".agentctl")
    run = store.create("agent", input={"task": f"use {key}"}, role="dev")
    run.journal.append("tool.result", output=f"{key[::-1]} and {hidden}", number=12345678)
    run.inbox.post({"type": "instruction", "text": quote(key, safe="")})
    run.write_output({"summary": key.encode().hex()})
    run.transition("running")
    run.transition("failed", reason=f"gate said {key}")
    written = [p for p in (tmp_path / ".agentctl").rglob("*") if p.is_file()]
    assert len(written) >= 5
    for path in written:
        assert not leaks(path.read_text(errors="replace"), [key]), path
    events = [json.loads(line) for line in run.paths.events.read_text().splitlines()]
    assert events[0]["output"].count(MARK) == 2 and events[0]["number"] == 12345678


# -- what is sent to a model -------------------------------------------------------------

ASK_CONFIG = """\
[models.local]
provider = "openai"
name = "qwen-test"
base_url = "{url}"
api_key_env = "LOCAL_KEY"
price = {{ input = 0.0, output = 0.0 }}

[tracker]
kind = "linear"
linear = {{ team = "ENG" }}
"""


def test_no_known_key_is_sent_to_a_model_even_inside_the_prompt(
    workspace: Path, cli: Invoke
) -> None:
    key, linear = canary("sk"), canary("lin_api")
    with LLMServer(api_key=key) as server:
        (workspace / "agentctl.toml").write_text(ASK_CONFIG.format(url=server.openai_url))
        server.script("*", Turn.text("noted"))
        prompt = f"remember {linear[::-1]} and {base64.b64encode(b'xy' + key.encode()).decode()}"
        env = {"LOCAL_KEY": key, "LINEAR_API_KEY": linear}
        result = cli("ask", "-m", "local", prompt, cwd=workspace, env=env)
        assert result.exit_code == 0, result.output
        (request,) = server.requests  # it did authenticate with the key, through the store
    body = json.dumps(request.body)
    assert not leaks(body, [key, linear]) and body.count(MARK) == 2
    for path in (workspace / ".agentctl").rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes().decode(errors="replace"), [key, linear]), path


# -- the secrets file --------------------------------------------------------------------

SECRETS_CONFIG = """\
[secrets]
file = "secrets.env"

[models.hosted]
provider = "openai"
name = "gpt-test"
base_url = "{url}"
api_key_env = "HOSTED_KEY"
price = {{ input = 0.0, output = 0.0 }}

[models.both]
provider = "openai"
name = "gpt-other"
base_url = "{url}"
api_key_env = "BOTH_KEY"
price = {{ input = 0.0, output = 0.0 }}
"""


def test_keys_come_from_a_0600_secrets_file(workspace: Path, cli: Invoke) -> None:
    key, spare, from_env = canary("sk"), canary("spare_token"), canary("sk-env")
    with LLMServer(api_key=key) as server:
        (workspace / "agentctl.toml").write_text(SECRETS_CONFIG.format(url=server.openai_url))
        secrets_file = workspace / "secrets.env"  # relative to the workspace root
        secrets_file.write_text(
            "# keys for agentctl\n"
            f"export HOSTED_KEY='{key}'\n"
            f'BOTH_KEY="{canary("sk-file")}"\n'
            f"SPARE_TOKEN={spare}\n"
        )
        secrets_file.chmod(0o600)
        server.script("*", Turn.text("hello"))
        env = {"BOTH_KEY": from_env}  # the environment wins over the file
        result = cli("ask", "-m", "hosted", "hi", cwd=workspace, env=env)
        assert result.exit_code == 0, result.output  # the server took the file's key
    assert keystore.get("HOSTED_KEY") == key and keystore.get("BOTH_KEY") == from_env
    assert "HOSTED_KEY" not in os.environ and "BOTH_KEY" not in os.environ
    # Every value of the file is redacted, used or not.
    assert keystore.redact(f"{key[::-1]} {spare}") == f"{MARK} {MARK}"


def test_a_secrets_file_others_can_read_is_refused(workspace: Path, cli: Invoke) -> None:
    (workspace / "agentctl.toml").write_text(SECRETS_CONFIG.format(url="http://127.0.0.1:9"))
    secrets_file = workspace / "secrets.env"
    secrets_file.write_text(f"HOSTED_KEY={canary('sk')}\n")
    secrets_file.chmod(0o644)
    result = cli("models", "list", cwd=workspace)
    assert result.exit_code == 2
    assert result.stderr == (
        f"agentctl: error: secrets file {secrets_file} is readable by group or others (mode 0644)"
        f" — chmod 600 {secrets_file}\n"
    )
    assert "Traceback" not in result.output


# -- the handoff to a child --------------------------------------------------------------

CHILD = """\
import json, os, sys
from agentctl import keystore
fd = int(os.environ[keystore.ENV_FD])
got = keystore.receive()
try:
    os.fstat(fd)
    still_open = True
except OSError:
    still_open = False
print(json.dumps({
    "received": got,
    "key": keystore.get("CHILD_KEY"),
    "other": keystore.get("NOT_HANDED"),
    "redacts_bystander": sys.argv[1] in keystore.redact_values(),
    "fd_var_left": keystore.ENV_FD in os.environ,
    "fd_open": still_open,
    "dumpable": keystore.is_dumpable(),
}), flush=True)
sys.stdin.read()  # wait, so the parent can look at us from outside
"""

LIVENESS = """\
import sys
from agentctl.runs.liveness import pid_alive, process_start_token
pid = int(sys.argv[1])
token = process_start_token(pid)
print(token is not None and pid_alive(pid, token))
"""


@pytest.mark.skipif(not LINUX, reason="prctl and /proc are Linux")
def test_a_child_gets_its_key_through_the_pipe_in_memory_only_and_is_not_dumpable(
    tmp_path: Path,
) -> None:
    key, bystander = canary("sk"), canary("ghp")
    keystore.load(["CHILD_KEY", "BYSTANDER"], environ={"CHILD_KEY": key, "BYSTANDER": bystander})
    env = {"PATH": os.environ["PATH"], "NOT_HANDED": "visible-in-env-only"}
    python, user = sys.executable, None
    if os.getuid() == 0 and Path(SYSTEM_PYTHON).exists():
        # As root every /proc file is readable: run the child as an ordinary user (with
        # an interpreter that user can run) to see what another process of it could see.
        python, user = SYSTEM_PYTHON, "nobody"
        env["PYTHONPATH"] = str(Path(keystore.__file__).parents[1])
    with keystore.handoff(["CHILD_KEY"]) as handoff:
        child = subprocess.Popen(
            [python, "-c", CHILD, bystander],
            env={**env, **handoff.env},
            pass_fds=handoff.pass_fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            user=user,
        )
    assert child.stdout is not None and child.stdin is not None
    try:
        seen = json.loads(child.stdout.readline())
        assert seen == {
            "received": True,
            "key": key,
            "other": None,  # a child has what it was handed, never its environment's
            "redacts_bystander": True,
            "fd_var_left": False,
            "fd_open": False,
            "dumpable": False,
        }
        environ = Path(f"/proc/{child.pid}/environ").read_bytes()
        assert key.encode() not in environ and bystander.encode() not in environ
        if user is not None:
            # Non-dumpable: its /proc files belong to root, not to its own user, so no
            # other process of that user can read its memory, environment or fds.
            assert Path(f"/proc/{child.pid}/environ").stat().st_uid == 0
            assert Path(f"/proc/{child.pid}/mem").stat().st_uid == 0
            # ...and liveness checks (/proc/<pid>/stat) still work for that user.
            alive = subprocess.run(
                [python, "-c", LIVENESS, str(child.pid)],
                capture_output=True,
                text=True,
                check=True,
                user=user,
                env=env,
                cwd="/",
            )
            assert alive.stdout.strip() == "True", alive.stderr
    finally:
        child.stdin.close()
        child.wait(timeout=10)


# -- a hostile pipeline ------------------------------------------------------------------

HOSTILE = """\
import base64, glob, sys, time, urllib.parse
from pathlib import Path

signals = Path({signals!r})
if "--wait" in sys.argv:  # the gate: hold still while the test looks at every process
    (signals / "gate-running").touch()
    for _ in range(1200):
        if (signals / "release").exists():
            break
        time.sleep(0.05)
print("== the environment of every process ==")
for path in sorted(glob.glob("/proc/[0-9]*/environ")):
    try:
        data = Path(path).read_bytes()
    except OSError:
        continue
    found = [v for v in data.split(b"\\0") if b"canary" in v]
    if found:
        print(path, b" ".join(found).decode(errors="replace"))
secret = Path({canary_file!r}).read_text().strip()
raw = secret.encode()
print("plain", secret)
print("rev", secret[::-1])
print("url", urllib.parse.quote(secret, safe=""))
print("hex", raw.hex())
for pad in (b"", b"x", b"xy", b"xyz"):
    print("b64", base64.b64encode(pad + raw).decode())
    print("b64url", base64.urlsafe_b64encode(pad + raw).decode())
print("wrapped", base64.encodebytes(b"A" * 50 + raw).decode())
sys.exit(1)
"""

HOSTILE_PIPELINE = """\
description = "a test that prints every key it can find"

[[steps]]
id = "worktree"
uses = "git.worktree"

[[steps]]
id = "implement"
role = "dev"
prompt = "{inputs.task}"

[[steps]]
id = "test"
run = "{project.test_command}"
on_fail = { goto = "implement", max = 1 }
"""

HOSTILE_CONFIG = """\
[project]
test_command = "{python} hostile_test.py --wait"
base_branch = "main"
gate_sandbox = "none"

[models.demo-coder]
provider = "openai"
api = "chat"
name = "demo-coder"
base_url = "{url}"
api_key_env = "CANARY_MODEL_KEY"
max_retries = 0
price = {{ input = 0.0, output = 0.0 }}

[models.demo-reviewer]
provider = "openai"
name = "demo-reviewer"
base_url = "{url}"
api_key_env = "CANARY_MODEL_KEY"
price = {{ input = 0.0, output = 0.0 }}

[models.claude]
provider = "anthropic"
name = "claude-bystander"
price = {{ input = 0.0, output = 0.0 }}

[models.gpt]
provider = "openai"
name = "gpt-bystander"
price = {{ input = 0.0, output = 0.0 }}

[tracker]
kind = "linear"

[tracker.linear]
team = "ENG"

[forge]
kind = "github"

[forge.github]
repo = "acme/calc"
"""


@pytest.fixture
def server_with_key() -> Iterator[tuple[LLMServer, str]]:
    key = canary("sk-model")
    with LLMServer(api_key=key) as running:
        yield running, key


def _processes() -> dict[int, int]:
    """pid → parent pid of every process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def _below(top: int) -> list[int]:
    parents = _processes()
    found, frontier = [], [top]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Hostile:
    """A hostile pipeline run from a real top command whose environment held the keys."""

    project: Path
    keys: dict[str, str]
    code: int
    printed: str  # what the top command printed
    below: dict[int, tuple[str, str]]  # pid → (command line, environment) while the gate ran
    top_environ: str


def run_hostile(tmp_path: Path, server: LLMServer, model_key: str) -> Hostile:
    keys = {
        "CANARY_MODEL_KEY": model_key,
        "ANTHROPIC_API_KEY": canary("sk-ant"),
        "OPENAI_API_KEY": canary("sk-openai"),
        "LINEAR_API_KEY": canary("lin_api"),
        "GITHUB_TOKEN": canary("ghp"),
    }
    signals = tmp_path / "signals"
    signals.mkdir()
    canary_file = tmp_path / "outside" / "canary.txt"  # what a test could find on disk
    canary_file.parent.mkdir()
    canary_file.write_text(model_key + "\n")
    project = prepare(tmp_path / "project", server, scripted=False).root
    python = sys.executable
    (project / "agentctl.toml").write_text(
        HOSTILE_CONFIG.format(python=python, url=server.openai_url)
    )
    dev = project / "roles" / "dev.toml"
    dev.write_text(dev.read_text().replace('sandbox = "auto"', 'sandbox = "none"'))
    (project / "pipelines" / "hostile.toml").write_text(HOSTILE_PIPELINE)
    (project / "hostile_test.py").write_text(
        HOSTILE.format(signals=str(signals), canary_file=str(canary_file))
    )
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "a hostile test")
    origin = tmp_path / "origin.git"  # the GitHub forge fetches from its remote
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    server.script(
        "demo-coder",
        Turn.tool_call("bash", {"command": f"{python} hostile_test.py"}),
        Turn.text("Done."),
        Turn.text("Still done."),
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AGENTCTL_CONFIG_DIR": os.environ["AGENTCTL_CONFIG_DIR"],
        **keys,
    }
    log = tmp_path / "top.log"
    below: dict[int, tuple[str, str]] = {}
    with log.open("wb") as out:
        top = subprocess.Popen(
            [python, "-m", "agentctl", "pipeline", "run", "hostile", "--task", "Make it pass"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not (signals / "gate-running").exists():
                assert top.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            for pid in _below(top.pid):
                with contextlib.suppress(OSError):  # gone already
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                    below[pid] = (_cmdline(pid), environ.decode(errors="replace"))
            top_environ = Path(f"/proc/{top.pid}/environ").read_bytes().decode(errors="replace")
        finally:
            (signals / "release").touch()
            code = top.wait(timeout=180)
    return Hostile(project, keys, code, log.read_text(), below, top_environ)


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_while_a_gate_runs_no_process_below_the_top_has_a_key_in_its_environment(
    tmp_path: Path, server_with_key: tuple[LLMServer, str]
) -> None:
    server, model_key = server_with_key
    run = run_hostile(tmp_path, server, model_key)
    assert run.code == 1, run.printed
    assert any("pipeline worker" in cmdline for cmdline, _ in run.below.values()), run.below
    for pid, (cmdline, environ) in run.below.items():
        assert not leaks(environ, list(run.keys.values())), (pid, cmdline)
    # The top command itself took them out of the environment block it started with.
    assert not [key for key in run.keys.values() if key in run.top_environ]


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_keys_a_gate_and_bash_print_in_any_encoding_are_never_written_or_sent(
    tmp_path: Path, server_with_key: tuple[LLMServer, str]
) -> None:
    server, model_key = server_with_key
    run = run_hostile(tmp_path, server, model_key)
    keys = list(run.keys.values())
    assert run.code == 1, run.printed
    assert not leaks(run.printed, keys)
    # Nothing under .agentctl/ (runs, transcripts, events, outputs, worktrees) holds a key.
    for path in (run.project / ".agentctl").rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes().decode(errors="replace"), keys), path
    # The gate did print them, and what was kept is the mark.
    store = RunStore(run.project / ".agentctl")
    gates = [s for s in store.list(kind="step") if s.record and s.record.step == "test"]
    assert len(gates) == 2  # the gate, and the gate again after the dev agent's second try
    for listing in gates:
        output = str((store.get(listing.id).read_output() or {})["output"])
        assert "rev [redacted]" in output and "b64 [redacted]" in output, output
    # The model saw the agent's bash output and the failed gate: redacted, and no key.
    bodies = [json.dumps(r.body) for r in server.requests]
    assert not leaks("\n".join(bodies), keys)
    assert any("rev [redacted]" in body for body in bodies)
    assert any("Step 'test' failed" in body and "[redacted]" in body for body in bodies)
