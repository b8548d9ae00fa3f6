"""The real coding agent CLIs the backend tests drive, installed from the npm registry.

``.ci/run`` installs them (``install``) into a cache folder outside the repository;
tests ``find`` them there (or on PATH) and skip with the reason when they are not
installed, unless ``AGENTCTL_REQUIRE_CLIS=1`` (set by ``.ci/run``) makes that a failure.
The versions are pinned to those the tests were written against (Claude Code 2.x's
native binary, Codex 0.171's exec events): a new release may change the flags and events
the backends rely on, and CI must not change under us; move the pins on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGES = {"claude": "@anthropic-ai/claude-code@2.1.197", "codex": "@openai/codex@0.171.0"}


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "agentctl" / "clis"
    return Path(os.environ.get("AGENTCTL_CLI_CACHE") or default)


def find(name: str) -> str | None:
    """The installed CLI ``name`` (``claude`` or ``codex``): the cache's, else PATH's."""
    cached = cache_dir() / "node_modules" / ".bin" / name
    if cached.exists() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name)


def install() -> None:
    """``npm install`` both CLIs into the cache folder (what ``.ci/run`` calls)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", *PACKAGES.values()],
        check=True,
    )


if __name__ == "__main__":
    install()
