"""A process on a pseudo-terminal, for tests of what a person at a terminal sees."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time
from pathlib import Path

CPR = "\x1b[6n"  # "where is the cursor?"


class Terminal:
    """A process on a pseudo-terminal: type lines, wait for text."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()

        def controlling_terminal() -> None:  # like a shell: own session, the pty as its tty
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=controlling_terminal,  # noqa: PLW1509 - only setsid and an ioctl
        )
        os.close(slave)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 45.0) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"did not see {pattern!r} in:\n{self.seen[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    break
                self.seen += chunk
                for _ in range(chunk.count(CPR)):  # answer as a terminal does (prompt_toolkit asks)
                    os.write(self.master, b"\x1b[1;1R")
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        os.close(self.master)
