"""A ``run`` step: a command as a gate (not an opinion), and the worktree's setup before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentctl import failpoints
from agentctl.config.schema import Step
from agentctl.pipeline.engine import Engine, StepFailed
from agentctl.pipeline.steps.common import TAIL, step_run
from agentctl.tools import gate
from agentctl.tools.feedback import gate_feedback
from agentctl.tools.gate import GateRun, GateSandbox
from agentctl.tools.programs import cannot_run
from agentctl.tools.projectenv import ensure_setup


def run_command(
    command: str, cwd: Path, timeout: float, *, home: Path, policy: GateSandbox
) -> GateRun:
    """``bash -c command`` under the gate sandbox policy, in its own process group."""
    return gate.run_gate(command, cwd, home=home, timeout=timeout, policy=policy)


def run_gate(step: Step, note: str, engine: Engine) -> dict[str, Any]:
    assert step.run is not None
    command = engine.render(step.run).strip()
    if not command:
        raise StepFailed(
            "no command to run: set [project] test_command in agentctl.toml",
            retry=False,
            failure_class="permanent",
        )
    cwd = Path(engine.values["run"].get("worktree") or engine.config.workspace.root)
    child = step_run(engine, step, {"command": command, "cwd": str(cwd)})
    if engine.values["run"].get("worktree"):  # the change may need a fresh build to be tested
        try:
            setup_worktree(engine, cwd, retry=True)
        except StepFailed as failed:
            child.write_output({"failure": failed.failure[-TAIL:], **failed.outputs})
            child.transition("failed", reason=failed.failure[:200])
            raise
    done = run_command(
        command,
        cwd,
        step.timeout or 1800.0,
        home=child.dir / "home",
        policy=GateSandbox.of(engine.config),
    )
    failpoints.hit("pipeline.after_gate")
    code, output = done.exit_code, done.output
    if done.refused:  # said in one line, with the fix: no command ran
        child.write_output({"output": output, "exit_code": code, "refused": True})
        child.transition("failed", reason=output[:200])
        raise StepFailed(
            output, {"output": output, "exit_code": code}, retry=False, failure_class="permanent"
        )
    outputs = {"output": output[-TAIL:], "exit_code": code, "sandboxed": done.sandboxed}
    child.write_output(outputs)
    child.transition("succeeded" if code == 0 else "failed", reason=f"exit {code}")
    setting = "[project] test_command" if "test_command" in step.run else f"step {step.id!r}"
    broken = None if done.timed_out else cannot_run(command, code, output, setting)
    if broken:  # 126/127: the machine lacks the program; no dev round can fix that
        raise StepFailed(
            f"{broken}\n{output[-1000:].strip()}",
            outputs,
            retry=False,
            failure_class="permanent",
        )
    if code != 0:
        raise StepFailed(gate_feedback(command, code, output, timed_out=done.timed_out), outputs)
    return outputs


def setup_worktree(engine: Engine, tree: Path, *, retry: bool) -> None:
    """``[project] setup_command`` in ``tree`` unless it ran there at this head (journaled)."""
    policy = GateSandbox.of(engine.config)
    done = ensure_setup(tree, policy, home=engine.run.dir / "setup-home")
    if done is None:
        return
    engine.run.journal.append(
        "worktree.setup",
        durable=True,
        command=policy.setup_command,
        worktree=str(tree),
        exit_code=done.exit_code,
    )
    if done.refused:
        raise StepFailed(
            done.output, {"exit_code": done.exit_code}, retry=False, failure_class="permanent"
        )
    command = policy.setup_command or ""
    broken = (
        None
        if done.timed_out
        else cannot_run(command, done.exit_code, done.output, "[project] setup_command")
    )
    if broken:  # 126/127: the machine lacks the program; no dev round can fix that
        raise StepFailed(
            broken, {"exit_code": done.exit_code}, retry=False, failure_class="permanent"
        )
    if not done.passed:
        output = done.output[-TAIL:]
        raise StepFailed(
            f"the setup command `{policy.setup_command}` exited {done.exit_code} in {tree}:\n"
            f"{output}",
            {"output": output, "exit_code": done.exit_code},
            retry=retry,
        )
