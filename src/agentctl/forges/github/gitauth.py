"""Git over HTTPS with a token that never touches a file.

git asks ``GIT_ASKPASS`` for the username and password; the script answers from an
environment variable of the git process alone, so the token is in no remote URL, no
``.git/config`` and no credential store (``credential.helper`` is emptied for these
commands: a configured ``store`` helper would otherwise save what worked).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentctl.errors import GitError
from agentctl.repo import gitops

TOKEN_VAR = "AGENTCTL_GIT_TOKEN"
SCRIPT = f"""#!/bin/sh
case "$1" in
  Username*) echo x-access-token ;;
  *) printf '%s\\n' "${TOKEN_VAR}" ;;
esac
"""
NO_HELPERS = ("-c", "credential.helper=")


@contextmanager
def askpass_env(token: str) -> Iterator[dict[str, str]]:
    """Variables for one git command; the script (no secret in it) is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="agentctl-askpass-") as folder:
        script = Path(folder) / "askpass"
        script.write_text(SCRIPT, encoding="utf-8")
        os.chmod(script, 0o700)
        yield {
            "GIT_ASKPASS": str(script),
            TOKEN_VAR: token,
            "GIT_TERMINAL_PROMPT": "0",
        }


def git_with_token(repo_root: Path, token: str, *args: str) -> str:
    """``git args`` in ``repo_root`` authenticated by ``token``; GitError names what failed."""
    repo = gitops.open_repo(repo_root)
    with askpass_env(token) as env:
        try:
            return gitops.run_git(repo, *NO_HELPERS, *args, env=env)
        except GitError as exc:
            said = exc.message.partition(": ")[2] or exc.message
            raise GitError(
                f"git {' '.join(args[:2])} failed: {said.replace(token, '***')}",
                hint="check the forge token's access to the repository and the remote URL",
            ) from None
