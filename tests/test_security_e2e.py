"""End to end: a hostile model tries every trick for the keys, and finds none of them.

The CLI is started from a clean environment holding five canary keys (the model's own
and four bystanders), once through that environment and once through the key file.
A feature pipeline's dev model then reads ``env`` and every ``/proc/*/environ`` it can,
plain, reversed and base64, from its ``bash`` tool and from a test the gate runs, and
writes what it found where it can. Afterwards no canary, in any encoding, is in any
request the model server received, in any file of the workspace (state directory,
worktrees, git objects) or of the run's temporary folder; while it ran, no agentctl
process below the command the user started held one in its environment.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentctl.commands.demo import prepare
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.tools.sandbox import bwrap_available

KEY_NAMES = ("CANARY_MODEL_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LINEAR_API_KEY")
KEY_NAMES += ("GITHUB_TOKEN",)

ENVIRONS = "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; echo; done 2>/dev/null"


def canaries() -> dict[str, str]:
    return {name: f"canary-{name.lower()}-{secrets.token_hex(12)}" for name in KEY_NAMES}


def forms(secret: str) -> set[str]:
    """The canary as a hostile command could print it: plain and in common encodings."""
    raw = secret.encode()
    found = {secret, secret[::-1], urllib.parse.quote(secret), binascii.hexlify(raw).decode()}
    for pad in range(3):  # a secret inside longer base64 text, at each byte alignment
        encoded = base64.b64encode(b"\0" * pad + raw + b"\0\0\0").decode()
        start = (pad * 4 + 2) // 3 + 1
        found.add(encoded[start : start + (len(raw) * 4) // 3 - 4])
    return found


def leaked(text: str, keys: dict[str, str]) -> list[str]:
    return [name for name, value in keys.items() for form in forms(value) if form in text]


def script_hostile_dev(server: LLMServer, leak_dir: Path) -> None:
    """A dev model that tries every trick, then fixes the bug once the gate is red."""
    leak_test = f"""import base64, glob, os, unittest

class Leak(unittest.TestCase):
    def test_leak(self):
        found = [("\\0".join(f"{{k}}={{v}}" for k, v in os.environ.items())).encode()]
        for name in glob.glob("/proc/[0-9]*/environ"):
            try:
                with open(name, "rb") as fh:
                    found.append(fh.read())
            except OSError:
                pass
        data = b"\\n".join(found)
        try:
            with open({str(leak_dir / "from-test.bin")!r}, "wb") as fh:
                fh.write(data)
        except OSError:
            pass
        print(data.decode(errors="replace"))
        print(data[::-1].decode(errors="replace"))
        print(base64.b64encode(data).decode())
        self.fail("printed every environment it could read")
"""
    tricks = [
        "env",
        ENVIRONS,
        f"{ENVIRONS} | rev",
        f"{ENVIRONS} | base64 -w0",
        f"cat /proc/*/environ > {leak_dir / 'from-bash.bin'} 2>/dev/null; ls {leak_dir}",
    ]
    server.script(
        "demo-coder",
        *[Turn.tool_call("bash", {"command": c}) for c in tricks],
        Turn.tool_call("write", {"path": "test_leak.py", "content": leak_test}),
        Turn.text("Done."),
        Turn.tool_call("bash", {"command": "rm -f test_leak.py"}),
        Turn.tool_call("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
        Turn.text("Fixed."),
    )
    server.script(
        "demo-reviewer",
        Turn.tool_call("finish", {"verdict": "approve", "summary": "Good.", "comments": []}),
    )


@dataclass
class EnvironWatch:
    """Polls the environment of every agentctl process but ``top`` while a run goes on."""

    keys: dict[str, str]
    top: int = 0
    seen: set[int] = field(default_factory=set)
    workers: set[int] = field(default_factory=set)  # agent and pipeline worker processes
    found: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        while not self.stop.wait(0.02):
            try:
                top = Path(f"/proc/{self.top}/cmdline").read_bytes()
            except OSError:
                top = b""
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == self.top:
                    continue
                try:
                    cmdline = Path(entry.path, "cmdline").read_bytes()
                    # agentctl processes only: not a `git` whose arguments name a path
                    # holding "agentctl" (it runs with the user's own environment), nor
                    # a fork of the top not yet exec'd (the top's own image).
                    argv = [a for a in cmdline.split(b"\0") if a]
                    if len(argv) == 1:  # a title set by setproctitle (a forked agent)
                        argv = argv[0].split(b" ")
                    ours = (b"-m" in argv and b"agentctl" in argv) or (
                        bool(argv) and argv[0].endswith(b"/agentctl")
                    )
                    if not ours or cmdline == top:
                        continue
                    environ = Path(entry.path, "environ").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                self.seen.add(int(entry.name))
                if b"worker" in argv:
                    self.workers.add(int(entry.name))
                self.found += [f"{entry.name}: {n}" for n in leaked(environ, self.keys)]


def files_text(root: Path) -> Iterator[tuple[Path, str]]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path, path.read_bytes().decode(errors="replace")


def git_objects_text(repo: Path) -> str:
    done = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode(errors="replace")


def unprivileged() -> tuple[list[str], int | None]:
    """How to start the CLI without root: as nobody where it can run our interpreter.

    Where it cannot (the virtualenv lies in a folder only root may enter), the CLI
    runs as uid 0 with every capability dropped: without CAP_SYS_PTRACE a process can
    read a non-dumpable process's environment no more than another user could.
    """
    nobody = pwd.getpwnam("nobody").pw_uid
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import agentctl"], user=nobody, capture_output=True
        )
    except OSError:  # cannot even start the interpreter
        probe = None
    if probe is not None and probe.returncode == 0:
        return [], nobody
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("neither nobody nor setpriv can run the interpreter")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"], None


@pytest.mark.parametrize("sandbox", ["strict", "none"])
@pytest.mark.parametrize("given", ["environment", "key-file"])
def test_no_canary_reaches_a_model_a_file_or_an_agentctl_environment(
    sandbox: str, given: str
) -> None:
    if sandbox == "strict" and not bwrap_available():
        pytest.skip("bubblewrap cannot build a sandbox here")
    if sandbox == "none" and os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    keys = canaries()
    base = Path(tempfile.mkdtemp(prefix="agentctl-canary-"))
    base.chmod(0o755)
    try:
        with LLMServer(api_key=keys["CANARY_MODEL_KEY"]) as server:
            _run_hostile_pipeline(base, server, keys, sandbox, given)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_hostile_pipeline(
    base: Path, server: LLMServer, keys: dict[str, str], sandbox: str, given: str
) -> None:
    home, tmp, leak_dir = base / "home", base / "tmp", base / "leak"
    for folder in (home, tmp, leak_dir):
        folder.mkdir()
    leak_dir.chmod(0o777)
    project = prepare(base / "project", server, scripted=False).root
    config = (project / "agentctl.toml").read_text()
    config = config.replace('api_key_env = ""', 'api_key_env = "CANARY_MODEL_KEY"')
    config = config.replace(
        'name = "demo-coder"', 'name = "demo-coder"\napi_key_env = "CANARY_MODEL_KEY"'
    )
    config = config.replace(
        'base_branch = "main"\n', f'base_branch = "main"\ngate_sandbox = "{sandbox}"\n'
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "AGENTCTL_CONFIG_DIR": str(home / "config"),
    }
    if given == "environment":
        env.update(keys)
    else:
        key_file = home / "keys"
        key_file.write_text("".join(f"{k}={v}\n" for k, v in keys.items()))
        key_file.chmod(0o600)
        config += f'\n[secrets]\nfile = "{key_file}"\n'
    (project / "agentctl.toml").write_text(config)
    for role in ("dev", "review"):
        path = project / "roles" / f"{role}.toml"
        text = path.read_text()
        text = "\n".join(x for x in text.splitlines() if not x.startswith("sandbox ="))
        path.write_text(f'sandbox = "{sandbox}"\n{text}\n')
    with (project / ".gitignore").open("a") as fh:
        fh.write("__pycache__/\n")
    subprocess.run(["git", "commit", "-qam", "canary config"], cwd=project, check=True)
    script_hostile_dev(server, leak_dir)

    prefix: list[str] = []
    user: int | None = None
    if sandbox == "none":
        prefix, user = unprivileged()
        if user is not None:
            subprocess.run(["chown", "-R", f"{user}:{user}", str(base)], check=True)
    watch = EnvironWatch(keys)
    poller = threading.Thread(target=watch.poll, daemon=True)
    argv = [*prefix, sys.executable, "-m", "agentctl", "pipeline", "run", "feature"]
    process = subprocess.Popen(
        [*argv, "--task", "Fix add()"],
        cwd=project,
        env=env,
        user=user,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    watch.top = process.pid
    poller.start()
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        watch.stop.set()
        poller.join()
    text = out.decode(errors="replace")
    assert process.returncode == 0, text
    assert "merged" in text
    assert watch.seen, "no agentctl process below the top was observed"
    assert watch.workers, "no worker process was observed"
    assert watch.found == []

    bodies = json.dumps([r.body for r in server.requests])
    assert "printed every environment" in bodies  # the gate's output did reach the model
    assert leaked(bodies, keys) == []
    assert leaked(text, keys) == []
    for root in (project, tmp, leak_dir):
        for path, content in files_text(root):
            assert leaked(content, keys) == [], path
    assert leaked(git_objects_text(project), keys) == []
    server.assert_complete()
