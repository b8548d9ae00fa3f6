"""Run a search where it can be stopped: a fresh child interpreter, killed at its limit.

A model chooses the regex and the glob and the tree can have any shape, so a search
can run for ever (``(a+)+$``, many ``**`` over a deep tree). Python's regex engine
holds the GIL inside C and no thread can interrupt it, so ``glob`` and ``grep`` run
in a child process that is SIGKILLed at the call's wall-clock limit. The child is
started with exec, not a bare fork (the agent has a heartbeat thread, and a forked
copy could inherit one of its locks held), with an empty environment (no key reaches
it), in the agent's process group (a cancel kills it) and dies with its parent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from agentctl.tools import reaper, search
from agentctl.tools.result import Output, ToolError

# The child finds the same agentctl as the parent, whatever the environment says.
_BOOT = (
    "import json,sys;p=json.loads(sys.stdin.readline());sys.path[:]=p['sys_path'];"
    "from agentctl.tools.isolate import serve;serve(p)"
)


def call(tool: str, root: str, args: dict[str, Any], timeout: float) -> Output:
    """Run ``search.<tool>(root, **args)`` in a child; a ``ToolError`` at the limit."""
    payload = json.dumps({"sys_path": sys.path, "tool": tool, "root": root, "args": args})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-X", "utf8", "-c", _BOOT],
            input=(payload + "\n").encode(),
            capture_output=True,
            check=False,
            cwd=root,
            env={},
            timeout=timeout,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        what = "pattern" if tool == "grep" else "glob"
        raise ToolError(
            f"{tool} stopped after {timeout:g}s (its time limit): the {what} or the tree "
            "is too costly to search; narrow the path, or simplify the "
            f"{what} (nested repeats like (a+)+ backtrack for ever)",
            timed_out=True,
        ) from None
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        why = last[0] if last else f"exit code {done.returncode}"
        raise ToolError(f"{tool} failed: {why}")
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise ToolError(f"{tool} failed: its process gave no result") from None
    if result.get("error") is not None:
        raise ToolError(result["error"], **result.get("meta", {}))
    return Output(result["text"], result.get("meta", {}), bool(result.get("is_error")))


def serve(payload: dict[str, Any]) -> None:
    """The child's side: run the search, print the result as one JSON object."""
    reaper.die_with_parent()
    functions = {"glob": search.glob, "grep": search.grep}
    try:
        out = functions[payload["tool"]](payload["root"], **payload["args"])
    except ToolError as exc:
        result: dict[str, Any] = {"error": exc.message, "meta": exc.meta}
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        result = {"error": f"{payload['tool']} failed: {where}{exc.strerror or exc}"}
    else:
        result = {"text": out.text, "meta": out.meta, "is_error": out.is_error}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)
