"""The confined tools a role agent uses: files, search, bash, read-only git, web pages.

``Toolbox(root, names, ...)`` offers ``specs`` to the model and ``run(name, args)``
returns a ``ToolResult``. Paths stay inside the workspace (``confine``), commands
run in their own process group and, where bubblewrap works, without network and
without sight of agentctl's state or the user's home (``sandbox``, ``toolchain``);
gates run under the same machinery with a policy of their own (``gate``).
``web_fetch`` (``web``) reads one public page as text, when a role lists it.

The package itself imports nothing: ``tools.feedback`` or ``tools.env`` must not
pull the toolbox (and the config schema behind it) into ``runs list``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["ToolResult", "Toolbox", "bwrap_available"]
_HOMES = {"ToolResult": "result", "Toolbox": "toolbox", "bwrap_available": "sandbox"}


def __getattr__(name: str) -> Any:
    """``agentctl.tools.Toolbox`` and the rest, imported on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
