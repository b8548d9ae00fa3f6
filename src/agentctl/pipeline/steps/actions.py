"""A ``uses`` step: a built-in action (forge, tracker, report), run as a child ``step`` run.

Actions look at the world before acting (an existing PR, review or merge is reused),
which is what makes a resumed pipeline safe.
"""

from __future__ import annotations

from typing import Any

from agentctl import atomic, failpoints
from agentctl.config.schema import Step
from agentctl.errors import (
    AgentctlError,
    MergeRefusedError,
    MissingKeyError,
    ServiceRejectedError,
    ServiceUnavailableError,
)
from agentctl.pipeline.engine import Engine, NeedsPerson, StepFailed
from agentctl.pipeline.mergequeue import merge_pr
from agentctl.pipeline.steps.common import (
    TAIL,
    base_of,
    forge_of,
    merged_here,
    record_review,
    step_run,
    tracker_of,
)
from agentctl.pipeline.steps.worktree import git_commit, git_update, git_worktree
from agentctl.repo.protected import rules_for
from agentctl.runs.record import Failure
from agentctl.tools.gate import GateSandbox


def run_action(step: Step, note: str, engine: Engine) -> dict[str, Any]:
    assert step.uses is not None
    args = {k: engine.render(v) if isinstance(v, str) else v for k, v in step.with_.items()}
    engine.current_step = step.id
    child = step_run(engine, step, {"action": step.uses, "with": args})
    try:
        try:
            outputs = ACTIONS[step.uses](engine, args)
        except AgentctlError as exc:  # a refused token, a rate limit, a git failure: said plainly
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
    if isinstance(exc, ServiceUnavailableError):
        return "transient"
    if isinstance(exc, ServiceRejectedError | MissingKeyError):
        return "permanent"
    return None


def forge_open_pr(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Open (or find) the PR; a ticket gets it linked, and one comment when it is new."""
    forge = forge_of(engine)
    branch = engine.values["run"]["branch"]
    ticket = (engine.values.get("ticket") or {}).get("id")
    before = forge.find_pr(branch)
    pr = forge.open_pr(
        branch=branch,
        base=base_of(engine),
        title=args.get("title") or engine.values["inputs"].get("task", "agentctl change")[:72],
        body=args.get("body", ""),
        ticket=ticket,
    )
    if ticket:
        tracker = tracker_of(engine)
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


def forge_review(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    found = _latest_verdict(engine, args.get("step"))
    if found is None:
        raise StepFailed(
            f"step {args.get('step')!r} has no verdict to record", failure_class="permanent"
        )
    number = _pr_number(engine)
    return {"verdict": record_review(engine, number, found)}


def _pr_number(engine: Engine) -> int:
    forge = forge_of(engine)
    pr = forge.find_pr(engine.values["run"]["branch"])
    if pr is None or pr.state != "open":
        pr = forge.open_pr(
            branch=engine.values["run"]["branch"],
            base=base_of(engine),
            title=str(engine.values["inputs"].get("task", "agentctl change"))[:72],
            body="",
            ticket=(engine.values.get("ticket") or {}).get("id"),
        )
    return pr.number


def forge_merge(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    forge = forge_of(engine)
    merged = merged_here(engine)
    number = merged if merged is not None else _pr_number(engine)
    found = _latest_verdict(engine)
    if found is not None and merged is None:
        record_review(engine, number, found)
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


def tracker_set_state(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    ticket = engine.values.get("ticket") or {}
    if not ticket.get("id"):
        return {"output": "no ticket: nothing to move"}
    tracker = tracker_of(engine)
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
    tracker = tracker_of(engine)
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
