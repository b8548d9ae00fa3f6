"""Turn an OSError met while touching run files into the StateError a user can act on."""

from __future__ import annotations

import errno
from pathlib import Path

from agentctl.errors import StateError


def state_error(exc: OSError, path: Path, doing: str) -> StateError:
    """``doing`` is a verb phrase: "append to", "read", "post a message in"."""
    if exc.errno == errno.ENOSPC:
        return StateError(
            f"disk full: {path} (while trying to {doing} it)",
            path=path,
            hint="free some space and run the command again",
        )
    return StateError(f"cannot {doing} {path}: {exc.strerror or exc}", path=path)
