"""``python -m agentctl``: how parents spawn child tiers (``sys.executable -m agentctl``)."""

import os

DIE_WITH = "AGENTCTL_DIE_WITH"  # agent.env.DIE_WITH: the parent's pid (not imported: speed)


def _bind_to_parent() -> None:
    """Ask the kernel for SIGKILL when the parent dies, first thing (no ``preexec_fn``:
    the parent has threads); a parent already gone by then means exit at once."""
    parent = os.environ.pop(DIE_WITH, None)
    if not parent:
        return
    from agentctl.tools import reaper  # lazy: ctypes, only for a bound child

    reaper.die_with_parent()
    if os.getppid() != int(parent):
        os._exit(1)


if __name__ == "__main__":
    _bind_to_parent()
    from agentctl.cli import main  # lazy: after the binding, before anything else

    main()
