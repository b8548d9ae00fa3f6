"""The environment a command agentctl runs gets: an allowlist, never the inherited whole.

Secrets leak through inherited environments, and any process of the same user can
read another's ``/proc/<pid>/environ``. So the commands a ``bash`` tool, a gate or a
git call runs get the basics plus what the role's ``env`` names; never a key. (A
spawned agentctl process gets a little more: ``agentctl.agent.env``.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# What any process needs to behave normally (paths, locale, terminal, temp, proxies).
BASIC = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
)


def pick(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The variables of ``environ`` that ``names`` lists (the others are left behind)."""
    return {name: environ[name] for name in names if name in environ}


def tool_env(extra: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """For the commands a ``bash`` tool runs: basics plus the role's ``env`` names."""
    environ = os.environ if environ is None else environ
    env = pick(environ, (*BASIC, *extra))
    env.setdefault("PATH", os.defpath)
    return env
