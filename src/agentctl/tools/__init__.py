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
