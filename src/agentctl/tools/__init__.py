"""The confined tools a role agent uses: files, search, bash, read-only git, web pages.

``Toolbox(root, names, ...)`` offers ``specs`` to the model and ``run(name, args)``
returns a ``ToolResult``. Paths stay inside the workspace (``confine``), commands
run in their own process group and, where bubblewrap works, without network and
without sight of agentctl's state or the user's home (``sandbox``, ``toolchain``);
gates run under the same machinery with a policy of their own (``gate``).
``web_fetch`` (``web``) reads one public page as text, when a role lists it.
"""

from __future__ import annotations

from agentctl.tools.result import ToolResult
from agentctl.tools.sandbox import bwrap_available
from agentctl.tools.toolbox import Toolbox

__all__ = ["ToolResult", "Toolbox", "bwrap_available"]
