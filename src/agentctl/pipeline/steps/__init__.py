"""How each kind of step runs: a role agent process, a gate command, a built-in action.

Every step is a child run of the pipeline (an agent run for ``role`` steps, a
``step`` run for the others), so ``runs show`` and ``cost --run`` see the whole tree.
``role.py`` spawns and watches agents, ``gate.py`` runs commands, ``worktree.py``
and ``actions.py`` hold the built-in actions, ``common.py`` what they share.
"""

from __future__ import annotations

from agentctl.pipeline.steps.actions import ACTIONS, run_action
from agentctl.pipeline.steps.gate import run_gate
from agentctl.pipeline.steps.role import run_role

RUNNERS = {"role": run_role, "run": run_gate, "uses": run_action}
__all__ = ["ACTIONS", "RUNNERS", "run_action", "run_gate", "run_role"]
