"""How each kind of step runs: a role agent process, a gate command, a built-in action.

Every step is a child run of the pipeline (an agent run for ``role`` steps, a
``step`` run for the others), so ``runs show`` and ``cost --run`` see the whole tree.
Actions look at the world before acting (an existing worktree, PR or merge is
reused), which is what makes a resumed pipeline safe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import atomic, failpoints
from agentctl.agent.supervise import (
    AgentRequest,
    deaths,
    died,
    latest_worker,
    resume_run,
    start_agent,
    watch,
)
from agentctl.config.schema import Step
from agentctl.errors import AgentctlError, TransitionError, UsageError
from agentctl.pipeline.engine import Engine, NeedsPerson, Paused, StepFailed
from agentctl.pipeline.feedback import gate_feedback
from agentctl.preflight import cannot_run
from agentctl.runs import TERMINAL, Run, RunRecord, RunStore, pid_alive, read_journal
from agentctl.runs.record import Failure
from agentctl.tools import gate
from agentctl.tools.gate import GateRun, GateSandbox

if TYPE_CHECKING:
    from agentctl.seams import Forge, Tracker

TAIL = 4000


# -- role -------------------------------------------------------------------------


def run_role(step: Step, note: str, engine: Engine) -> dict[str, Any]:
    """Spawn the role's agent (or resume the one a crash or a failure left), wait, read it."""
    assert step.role is not None
    store = RunStore(engine.config.workspace.state_dir)
    child_id = engine.state.child.get(step.id)
    child = store.get(child_id) if child_id is not None else None
    if child is not None:
        record = child.load()
        if record.status not in TERMINAL or _ended_with_pipeline(record):
            # killed with us, ended by our own failure, or paused: carry on from its transcript
            raised = _budget(engine, step) if record.status == "paused" else None
            if raised is None:
                _within_bound(engine, step.role, child)
            with contextlib.suppress(UsageError):  # UsageError: it is still running; watch it
                resume_run(engine.config, child, budget_usd=raised)
        elif engine.state.retrying == step.id and _resumable(child):
            resume_run(engine.config, child)  # its own cap, as it was
        elif engine.state.retrying == step.id:
            child = None  # it ended on its own terms (a verdict, a limit): a fresh run
    if child is None:
        prompt = engine.render(step.prompt or "{inputs.task}")
        base = None
        if engine.config.role(step.role).result == "verdict":
            base, under_review = review_context(engine)
            prompt += under_review
        budget = _budget(engine, step)
        child = start_agent(
            engine.config,
            AgentRequest(
                role=step.role,
                task=prompt + note,
                cwd=Path(engine.values["run"].get("worktree") or engine.config.workspace.root),
                model=step.model,
                budget_usd=budget,
                base=base,
            ),
            parent=engine.run,
            sets=tuple(engine.run.read_input().get("sets", [])),
        )
        engine.run.journal.append("step.child", durable=True, step=step.id, run_id=child.id)
        engine.state.child[step.id] = child.id
        failpoints.hit("pipeline.after_child_start")
    engine.state.retrying = None  # this run (resumed or new) is the step's attempt now
    record = _watched(engine, step.role, child)
    output = child.read_output() or {}
    outputs = {
        "output": output.get("text", ""),
        "verdict": output.get("verdict", ""),
        "comments": _comments(output),
        "cost": output.get("cost_usd", "0"),
        "model": output.get("model", ""),
        "run_id": child.id,
    }
    if output.get("verdict"):
        _review_on_open_pr(engine, outputs)
    if record.status == "paused":
        raise Paused(f"step {step.id!r}: {record.reason or output.get('reason') or 'paused'}")
    if record.status != "succeeded":
        # An agent that died or could not reach its model failed for a reason outside
        # the code: no on_fail round can fix that; `runs resume` continues it instead.
        failure = _agent_failure(step.role, record, output)
        raise StepFailed(
            failure, outputs, retry=not _resumable(child), failure_class=_class_of(record)
        )
    if engine.config.role(step.role).result == "verdict" and not output.get("verdict"):
        raise StepFailed(  # a review that ended without one: asking again will not help
            f"the {step.role} agent ended without a verdict",
            outputs,
            failure_class="permanent",
        )
    if output.get("verdict") == "request_changes":
        raise StepFailed(
            f"review requested changes:\n{output.get('summary', '')}\n{outputs['comments']}",
            outputs,
            reason="changes_requested",
        )
    return outputs


def review_context(engine: Engine) -> tuple[str | None, str]:
    """For a review: the base ref its ``git_diff`` compares with, and the prompt's block.

    The block names the branch and the base and gives the change's stat, so every
    pipeline's reviewer starts from the change itself, whatever its prompt says.
    Nothing without a branch of its own (a review of the plain workspace).
    """
    from agentctl.agent.env import tool_env
    from agentctl.tools import gitview
    from agentctl.tools.result import ToolError

    branch, worktree = engine.values["run"].get("branch"), engine.values["run"].get("worktree")
    if not branch or not worktree:
        return None, ""
    base = _base(engine)
    ref = _forge(engine).fetch(base)  # the base as the forge has it, not a stale local copy
    try:
        stat = gitview.branch_stat(str(worktree), tool_env(), ref)
    except ToolError as exc:
        stat = f"(no stat: {exc.message})"
    block = (
        f"\n\nChange under review: branch {branch} against base {base}\n{stat}\n\n"
        f"git_diff shows this whole change (it compares with {base} unless you name "
        "another base); read, grep and glob show the code around it."
    )
    return ref, block


def _watched(engine: Engine, role: str, child: Run) -> RunRecord:
    """Wait for the agent's ending; a worker that dies without one is resumed, within bound."""
    while True:
        for _ in watch(child):
            pass
        record = _settled(child, role)
        if record.status != "failed" or not died(record.reason):
            return record
        _within_bound(engine, role, child)
        with contextlib.suppress(UsageError):  # someone else resumed it first: watch that one
            resume_run(engine.config, child)  # from its transcript, journaled results kept


def _within_bound(engine: Engine, role: str, child: Run) -> None:
    """Refuse (a failed step, no on_fail round) an agent killed more than ``max_resumes`` times.

    The deaths are counted from the agent run's own journal, so a pipeline resumed
    after its own death keeps counting where the last one stopped.
    """
    bound = engine.config.settings.orchestrator.max_resumes
    record = child.load()
    if record.status == "running" and record.pid and not pid_alive(record.pid, record.pid_start):
        record = _settled(child, role)  # died with its pipeline: that death counts too
    killed = deaths(child)
    if killed <= bound:
        return
    last = f"; last: {record.reason}" if record.reason else ""
    failure = f"the {role} agent was killed {killed} times (max_resumes {bound}){last}"
    if child.load().status == "failed":  # said by ``_settled``: now the whole story
        child.update(reason=failure)
    else:
        with contextlib.suppress(TransitionError):
            child.transition("failed", reason=failure)
    raise StepFailed(failure, {"run_id": child.id}, retry=False, failure_class="transient")


def _class_of(record: RunRecord) -> Failure | None:
    """The agent's failure class; a process that died or was stopped is transient."""
    if record.failure is not None:
        return record.failure
    if record.status == "canceled" or died(record.reason) or _ended_with_pipeline(record):
        return "transient"
    return None


def _ended_with_pipeline(record: RunRecord) -> bool:
    """Was the agent failed only because its pipeline failed (``end_children``)?"""
    return record.status == "failed" and (record.reason or "").startswith("its pipeline ")


def _resumable(child: Run) -> bool:
    """Should a re-run of this failed agent continue its transcript (not start afresh)?

    Yes when it stopped for a reason outside the conversation: its process died
    (no output) or a model call failed (a missing key, a provider error, ending
    ``error``). An agent that ended on its own terms (an answer, a verdict, a refusal,
    max_turns, its deadline, a cancel) would only end the same way again: a fresh run.
    """
    record = child.load()
    if record.status != "failed":
        return False
    output = child.read_output()  # ``killed``: written for it by whoever ended it
    return output is None or output.get("ending") in ("error", "killed")


def _settled(child: Run, role: str) -> RunRecord:
    """The child's record once its worker is gone; a worker that died is marked failed."""
    record = child.load()
    if record.status in TERMINAL or record.status == "paused":
        return record
    pid = latest_worker(child) or record.pid
    with contextlib.suppress(TransitionError):  # it finished after all, just now
        child.transition("failed", reason=f"the {role} agent's {_died(pid)}", failure="transient")
    return child.load()


def _died(pid: int | None) -> str:
    where = f" (pid {pid})" if pid else ""
    return f"process died{where} before it finished"


def _agent_failure(role: str, record: RunRecord, output: Mapping[str, Any]) -> str:
    """Why a role's agent did not succeed, in words: never a bare status or ``None``."""
    reason = str(record.reason or output.get("reason") or "").strip()
    if record.status == "failed" and reason.startswith(f"the {role} agent"):
        return reason  # already a sentence (a dead worker, said by ``_settled``)
    if record.status == "canceled":
        return f"the {role} agent was canceled" + (f": {reason}" if reason else "")
    if record.status == "failed":
        return f"the {role} agent failed: {reason or 'it ended without saying why'}"
    return f"the {role} agent ended {record.status}" + (f": {reason}" if reason else "")


def _budget(engine: Engine, step: Step) -> float | None:
    """A role step's cap: the role's, the step's and what the pipeline has left, lowest."""
    assert step.role is not None
    caps = [
        Decimal(str(c))
        for c in (engine.config.role(step.role).budget_usd, step.budget_usd)
        if c is not None
    ]
    remaining = engine.remaining_budget()
    if remaining is not None:
        caps.append(max(remaining, Decimal(0)))
    return float(min(caps)) if caps else None


def _comments(output: dict[str, Any]) -> str:
    lines = []
    for comment in output.get("comments", []) or []:
        where = ":".join(str(comment[k]) for k in ("file", "line") if comment.get(k))
        lines.append(f"- {where + ': ' if where else ''}{comment.get('body', '')}")
    return "\n".join(lines)


# -- run (a gate) ------------------------------------------------------------------


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
    child = _step_run(engine, step, {"command": command, "cwd": str(cwd)})
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


def _step_run(engine: Engine, step: Step, data: dict[str, Any]):  # type: ignore[no-untyped-def]
    child = RunStore(engine.config.workspace.state_dir).create(
        "step",
        input={"step": step.id, **data},
        parent=engine.run,
        step=step.id,
        pipeline=engine.name,
        workspace=str(engine.config.workspace.root),
    )
    child.mark_started(os.getpid(), os.getpgid(0))
    engine.run.journal.append("step.child", durable=True, step=step.id, run_id=child.id)
    return child


# -- uses (built-in actions) ---------------------------------------------------------


def run_action(step: Step, note: str, engine: Engine) -> dict[str, Any]:
    assert step.uses is not None
    args = {k: engine.render(v) if isinstance(v, str) else v for k, v in step.with_.items()}
    engine.current_step = step.id
    child = _step_run(engine, step, {"action": step.uses, "with": args})
    try:
        try:
            outputs = ACTIONS[step.uses](engine, args)
        except AgentctlError as exc:  # a refused token, a rate limit, a git failure: said plainly
            from agentctl.errors import MergeRefusedError

            # A refused merge (the policy, a moved head, a missing program) is nothing a
            # dev round could change: no on_fail loop for it. (str(exc) holds the hint.)
            retry = not isinstance(exc, MergeRefusedError)
            raise StepFailed(
                f"{step.uses}: {exc}", retry=retry, failure_class=_action_class(exc)
            ) from None
        failpoints.hit("pipeline.after_action")
    except StepFailed as failed:
        child.write_output({"failure": failed.failure[-TAIL:], **failed.outputs})
        child.transition("failed", reason=failed.failure[:200])
        raise
    child.write_output(outputs)
    child.transition("succeeded")
    return outputs


def _action_class(exc: AgentctlError) -> Failure | None:
    """A service down or rate limited may answer later; a refused token or input never."""
    from agentctl.errors import MissingKeyError, ServiceRejectedError, ServiceUnavailableError

    if isinstance(exc, ServiceUnavailableError):
        return "transient"
    if isinstance(exc, ServiceRejectedError | MissingKeyError):
        return "permanent"
    return None


def _forge(engine: Engine) -> Forge:
    return engine.services.forge


def _tracker(engine: Engine) -> Tracker:
    return engine.services.tracker


def _base(engine: Engine) -> str:
    return str(engine.values["project"]["base_branch"])


def git_worktree(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    from agentctl.gitops import ensure_worktree

    ticket = engine.values.get("ticket") or {}
    branch = args.get("branch") or f"agentctl/{ticket.get('id') or engine.run.id[-6:]}"
    base = args.get("base") or _base(engine)
    # A named branch (a review of an existing PR) starts where the forge has it; a new
    # one from the forge's base as it is now.
    start = _forge(engine).fetch(args["branch"] if args.get("branch") else base)
    path = ensure_worktree(engine.repo_root(), engine.config.workspace.state_dir, branch, start)
    engine.values["run"].update(branch=branch, worktree=str(path))
    engine.run.update(worktree=str(path))
    # A fresh checkout of the base: a failing setup is the environment's, not an agent's.
    setup_worktree(engine, path, retry=False)
    return {"branch": branch, "path": str(path)}


def setup_worktree(engine: Engine, tree: Path, *, retry: bool) -> None:
    """``[project] setup_command`` in ``tree`` unless it ran there at this head (journaled)."""
    from agentctl.tools.projectenv import ensure_setup

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


CONFLICT_NOTE = (
    "Merging {base} into this branch conflicted in: {files}. Those files hold "
    "<<<<<<< / ======= / >>>>>>> blocks: resolve every one, keeping what both sides "
    "need, and remove the markers. The merge is committed for you afterwards."
)


def git_update(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Bring the branch up to date before the dev step; conflicts become its task.

    ``output`` is empty when the merge was clean, else the note a prompt template
    (``{steps.<id>.output}``) hands to the agent; it is in the journal, so a resumed
    pipeline tells the agent the same.
    """
    from agentctl.gitops import merge_in

    base = args.get("base") or _base(engine)
    worktree = Path(engine.values["run"]["worktree"])
    if _merged_here(engine) is not None:  # a resume after the merge: main is not merged in
        return {
            "output": "",
            "detail": "its pull request is merged: left as it is",
            "conflicts": [],
        }
    update = merge_in(worktree, _forge(engine).fetch(base))
    if update.ok:
        return {"output": "", "detail": update.detail, "conflicts": []}
    note = CONFLICT_NOTE.format(base=base, files=", ".join(update.conflicts))
    return {"output": note, "detail": update.detail, "conflicts": list(update.conflicts)}


def git_commit(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Commit the agent's change; a crash after the commit is found, not committed twice."""
    from agentctl.gitops import commit_all, head

    worktree = Path(engine.values["run"]["worktree"])
    message = args.get("message") or f"agentctl: {engine.values['inputs'].get('task', '')}"
    subject = message.strip().splitlines()[0][:72] if message.strip() else "agentctl change"
    done = _this_attempt(engine, "git.commit")
    if done is not None:
        return {"sha": done}
    engine.run.journal.append(
        "effect.intent", durable=True, action="git.commit", base=head(worktree)
    )
    sha = commit_all(worktree, f"{subject}\n\n{message}".strip())
    if sha is None:
        raise StepFailed("the agent changed nothing: an empty change is not a passing step")
    engine.run.journal.append("effect.result", durable=True, action="git.commit", sha=sha)
    return {"sha": sha}


def _this_attempt(engine: Engine, action: str) -> str | None:
    """The result of ``action`` from an attempt of this step that a crash cut short.

    When the step's previous start has neither a finish nor a goto after it, the
    pipeline died inside it: a journaled result is reused, and an intent without a
    result is checked against the world (did HEAD move past the intent's base?).
    """
    from agentctl.gitops import head

    step = engine.current_step
    events = read_journal(engine.run.paths.events).events
    starts = [
        i for i, e in enumerate(events) if e.get("type") == "step.start" and e.get("step") == step
    ]
    if len(starts) < 2:
        return None
    window = events[starts[-2] : starts[-1]]
    if any(e.get("type") in ("step.finish", "step.goto") and e.get("step") == step for e in window):
        return None  # the previous attempt ended properly: this is a new attempt
    intent = None
    for event in window:
        if event.get("action") != action:
            continue
        if event.get("type") == "effect.result":
            return str(event["sha"])
        intent = event
    if intent is not None:
        now = head(Path(engine.values["run"]["worktree"]))
        if now != intent.get("base"):
            engine.run.journal.append(
                "effect.result", durable=True, action=action, sha=now, found=True
            )
            return now
    return None


def forge_open_pr(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Open (or find) the PR; a ticket gets it linked, and one comment when it is new."""
    forge = _forge(engine)
    branch = engine.values["run"]["branch"]
    ticket = (engine.values.get("ticket") or {}).get("id")
    before = forge.find_pr(branch)
    pr = forge.open_pr(
        branch=branch,
        base=_base(engine),
        title=args.get("title") or engine.values["inputs"].get("task", "agentctl change")[:72],
        body=args.get("body", ""),
        ticket=ticket,
    )
    if ticket:
        tracker = _tracker(engine)
        link = pr.url or f"{branch} (pull request #{pr.number})"
        if pr.url:
            tracker.link(ticket, pr.url, f"PR #{pr.number}: {pr.title}")
        if pr.state == "open" and (before is None or before.number != pr.number):
            tracker.comment(ticket, f"agentctl opened pull request #{pr.number}: {link}")
    return {"pr": pr.number, "url": pr.url}


def _latest_verdict(engine: Engine, step_id: str | None = None) -> dict[str, Any] | None:
    for step in reversed(engine.pipeline.steps):
        outputs = engine.state.outputs.get(step.id, {})
        if (step_id is None or step.id == step_id) and outputs.get("verdict"):
            return outputs
    return None


def _record_review(engine: Engine, number: int, found: dict[str, Any]) -> str:
    from agentctl.seams import Review

    forge = _forge(engine)
    pr = forge.get_pr(number)
    if not any(r.head_sha == pr.head_sha and r.verdict == found["verdict"] for r in pr.reviews):
        comments = tuple(
            {"body": line[2:]}
            for line in found.get("comments", "").splitlines()
            if line.startswith("- ")
        )
        forge.add_review(
            number,
            Review(
                verdict=found["verdict"],
                summary=found.get("output", ""),
                comments=comments,
                author="agentctl review",
                head_sha=pr.head_sha,
            ),
        )
    return str(found["verdict"])


def _review_on_open_pr(engine: Engine, outputs: dict[str, Any]) -> None:
    """A verdict is recorded on the branch's open pull request the moment it exists."""
    branch = engine.values["run"].get("branch")
    if not branch:
        return
    forge = _forge(engine)
    pr = forge.find_pr(branch)
    if pr is not None and pr.state == "open":
        _record_review(engine, pr.number, outputs)


def forge_review(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    found = _latest_verdict(engine, args.get("step"))
    if found is None:
        raise StepFailed(
            f"step {args.get('step')!r} has no verdict to record", failure_class="permanent"
        )
    number = _pr_number(engine)
    return {"verdict": _record_review(engine, number, found)}


def _pr_number(engine: Engine) -> int:
    forge = _forge(engine)
    pr = forge.find_pr(engine.values["run"]["branch"])
    if pr is None or pr.state != "open":
        pr = forge.open_pr(
            branch=engine.values["run"]["branch"],
            base=_base(engine),
            title=str(engine.values["inputs"].get("task", "agentctl change"))[:72],
            body="",
            ticket=(engine.values.get("ticket") or {}).get("id"),
        )
    return pr.number


def forge_merge(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    from agentctl.mergequeue import merge_pr
    from agentctl.protected import rules_for

    forge = _forge(engine)
    merged = _merged_here(engine)
    number = merged if merged is not None else _pr_number(engine)
    found = _latest_verdict(engine)
    if found is not None and merged is None:
        _record_review(engine, number, found)
    gate = args.get("gate") or engine.values["project"].get("test_command")
    outcome = merge_pr(
        forge,
        number,
        repo_root=engine.repo_root(),
        state_dir=engine.config.workspace.state_dir,
        gate=gate or None,
        journal=engine.run.journal,
        protected=rules_for(engine.config),
        sandbox=GateSandbox.of(engine.config),
        gate_home=engine.run.dir / "merge-gate-home",
    )
    if outcome.status == "protected":  # the engine stops before this step; the queue agrees
        raise NeedsPerson(outcome.detail)
    if outcome.status not in ("merged", "already_merged"):
        detail = outcome.detail + ("\n" + outcome.gate_output if outcome.gate_output else "")
        raise StepFailed(f"merge {outcome.status}: {detail}", {"pr": number})
    kept = {"kept": list(outcome.kept)} if outcome.kept else {}  # a dirty worktree, said
    return {"sha": outcome.sha, "pr": number, **kept}


def _merged_here(engine: Engine) -> int | None:
    """The branch's PR when it is merged with this run's work: a resume after the merge.

    The merge queue removed the worktree (and the branch) after the merge; a merged
    PR from an earlier run of the same branch name holds none of this run's commits.
    """
    from agentctl.gitops import head, is_ancestor

    pr = _forge(engine).find_pr(engine.values["run"]["branch"])
    if pr is None or pr.state != "merged" or not pr.head_sha:
        return None
    worktree = Path(engine.values["run"]["worktree"])
    if not worktree.is_dir():
        return pr.number
    try:
        ours = head(worktree)
        taken = ours == pr.head_sha or is_ancestor(worktree, ours, pr.head_sha)
    except AgentctlError:
        return None
    return pr.number if taken else None


def tracker_set_state(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    ticket = engine.values.get("ticket") or {}
    if not ticket.get("id"):
        return {"output": "no ticket: nothing to move"}
    tracker = _tracker(engine)
    current = tracker.get(ticket["id"])
    before = current.state
    if current.closed and before.casefold() != str(args["state"]).casefold():
        # Done (or Canceled) is final for automation: a resumed or late pipeline never
        # moves a merged ticket back to In Review; a person may, in the tracker.
        return {"output": f"{ticket['id']} is {before}: left there, not moved to {args['state']}"}
    after = tracker.set_state(ticket["id"], args["state"]).state
    if args.get("comment") and before != after:  # a milestone is said once, when reached
        tracker.comment(ticket["id"], str(args["comment"]))
    return {"output": f"{ticket['id']} → {args['state']}"}


def tracker_comment(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    ticket = engine.values.get("ticket") or {}
    if not ticket.get("id"):
        return {"output": "no ticket: nothing to comment on"}
    tracker = _tracker(engine)
    tracker.comment(ticket["id"], args["body"])
    return {"output": "commented"}


def report_write(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    reports = engine.config.workspace.state_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / (args.get("name") or f"{engine.run.id}.md")
    atomic.write_text(path, str(args["content"]).rstrip() + "\n")
    return {"path": str(path)}


ACTIONS = {
    "git.worktree": git_worktree,
    "git.update": git_update,
    "git.commit": git_commit,
    "forge.open_pr": forge_open_pr,
    "forge.review": forge_review,
    "forge.merge": forge_merge,
    "tracker.set_state": tracker_set_state,
    "tracker.comment": tracker_comment,
    "report.write": report_write,
}

RUNNERS = {"role": run_role, "run": run_gate, "uses": run_action}
