"""The warden: the parent of a foreign agent CLI, so nothing it starts outlives its step.

    python -m agentctl.tools.warden [--parent PID] [--relay PORT:SOCKET] -- PROGRAM ARGS...

A coding agent CLI starts its commands in sessions of their own, which a kill of its
process group misses and which, once the CLI is gone, init adopts. The warden runs
the CLI as its child and

- is a child subreaper: every orphan of the CLI's tree is adopted by it, not by init;
- dies with its parent (``PR_SET_PDEATHSIG``: SIGTERM) and on SIGTERM, SIGINT or
  SIGHUP kills every process below it (SIGKILL) before it exits — so a ``kill -9`` of
  the agent process still leaves nothing running;
- when the CLI exits, kills what it left behind and exits with the CLI's code;
- with ``--relay``, listens on 127.0.0.1:PORT and carries each connection to the Unix
  socket SOCKET: inside a sandbox without network, the metering proxy (bound into it
  as that socket) is the one address the CLI can reach.

It imports only the standard library and ``tools.reaper``: it starts in a few tens of
milliseconds and runs where agentctl's dependencies are not visible.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from agentctl.tools import reaper


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    parent: int | None = None
    relay: tuple[int, str] | None = None
    while args and args[0] != "--":
        option = args.pop(0)
        value = args.pop(0) if args else ""
        if option == "--parent":
            parent = int(value)
        elif option == "--relay":
            port, _, path = value.partition(":")
            relay = (int(port), path)
        else:
            sys.stderr.write(f"agentctl warden: unknown option {option!r}\n")
            return 2
    program = args[1:]
    if not program:
        sys.stderr.write("agentctl warden: no program given after --\n")
        return 2
    reaper._prctl(reaper.PR_SET_PDEATHSIG, signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        return 1  # the parent died before we could follow it
    reaper.become_subreaper()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        reaper.kill_left(())
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if relay is not None:
        listener = socket.create_server(("127.0.0.1", relay[0]))
        threading.Thread(target=_accept, args=(listener, relay[1]), daemon=True).start()
    try:
        child = subprocess.Popen(program)
    except OSError as exc:
        sys.stderr.write(f"agentctl warden: cannot start {program[0]}: {exc}\n")
        return 127
    code = child.wait()
    reaper.kill_left(())  # what the CLI left behind, setsid or not
    return code if code >= 0 else 128 - code


def short_path(path: str) -> str:
    """A name for ``path`` that fits a Unix socket address (108 bytes): through an open
    descriptor of its folder (``/proc/self/fd/N/name``) when the path is longer."""
    if len(path.encode()) < 100:
        return path
    folder, name = os.path.split(path)
    fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)  # kept open: the name depends on it
    return f"/proc/self/fd/{fd}/{name}"


def _accept(listener: socket.socket, path: str) -> None:
    path = short_path(path)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
