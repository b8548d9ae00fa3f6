"""The environment a spawned agent or pipeline process gets: an allowlist, never a key.

An agent or pipeline process gets the basics it needs to run (``agentctl.tools.env``)
and the plumbing to reach its model and find its config; its keys come through an
inherited pipe (``agentctl.keystore.handoff``), never through its environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agentctl.tools.env import BASIC, pick

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
    "AGENTCTL_HOST",  # a worker's --hostname: its runs record it as their host
)


# Set by a parent whose child must not outlive it (a Celery worker's pipeline and
# that pipeline's agents): ``python -m agentctl`` asks the kernel for
# SIGKILL at the parent's death before anything else (``agentctl.__main__``).
DIE_WITH = "AGENTCTL_DIE_WITH"


def agent_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """For a spawned agentctl process: basics and agent plumbing; never a key."""
    environ = os.environ if environ is None else environ
    env = pick(environ, (*BASIC, *AGENT_ONLY))
    env["PYTHONUNBUFFERED"] = "1"  # process.log gets lines as they happen
    return env
