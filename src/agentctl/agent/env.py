"""The environments agentctl hands on: an allowlist, never the inherited whole.

Secrets leak through inherited environments, and any process of the same user can
read another's ``/proc/<pid>/environ``. So no key is in any environment agentctl
makes: an agent or pipeline process gets the basics it needs to run, and its keys
through an inherited pipe (``agentctl.keystore.handoff``); the commands its ``bash``
tool runs get the basics plus what the role's ``env`` names.
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
# What an agent process (not its tools) also needs: to reach the model and to find config.
AGENT_ONLY = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "XDG_CONFIG_HOME",
    "AGENTCTL_CONFIG_DIR",
    "AGENTCTL_FAILPOINT",
)


def _pick(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: environ[name] for name in names if name in environ}


def agent_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """For a spawned agentctl process: basics and agent plumbing; never a key."""
    environ = os.environ if environ is None else environ
    env = _pick(environ, (*BASIC, *AGENT_ONLY))
    env["PYTHONUNBUFFERED"] = "1"  # process.log gets lines as they happen
    return env


def tool_env(extra: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """For the commands a ``bash`` tool runs: basics plus the role's ``env`` names."""
    environ = os.environ if environ is None else environ
    env = _pick(environ, (*BASIC, *extra))
    env.setdefault("PATH", os.defpath)
    return env
