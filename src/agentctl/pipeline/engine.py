"""The pipeline engine: steps in order, each a child run, resumable from its journal.

The pipeline's own events.jsonl is its state: ``step.start``/``step.finish`` with the
step's outputs, ``step.goto`` for a loop back (with the failure carried into the
next prompt), and the intents and results of side effects. A resumed pipeline
replays the journal to learn where it was and what each finished step produced,
then continues; actions check the world (branch, commit, PR, merge) before acting,
so a resume never makes a second PR or a second merge. A pipeline that failed
resumes at the step that failed, which runs again (see ``State.replay``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentctl.config import Config
from agentctl.config.schema import Pipeline, Step
from agentctl.cost.ledger import Ledger
from agentctl.cost.report import descendants
from agentctl.errors import AgentctlError
from agentctl.pipeline.render import holds, render
from agentctl.pipeline.services import Services
from agentctl.repo.protected import describe, protected_changes, rules_for
from agentctl.runs import Run, read_journal
from agentctl.runs.record import Failure
from agentctl.tools.feedback import bound

FAILURE_NOTE = (
    "\n\nThe previous attempt did not pass. Step {step!r} failed with:\n\n{failure}\n\n"
    "Fix what it reports."
)
CAUSE_CHARS = 700  # of each failure in a reason that names an earlier cause


def clip(text: str, limit: int) -> str:
    """``text`` within about ``limit`` characters: its head and tail, whole lines, the cut said."""
    if len(text) <= limit:
        return text
    head = text[: limit // 2].rsplit("\n", 1)[0]
    tail = text[-(limit // 2) :].split("\n", 1)[-1]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut]\n{tail}"


class StepFailed(Exception):
    """A step did not pass; ``failure`` is what the next attempt is told.

    ``retry=False`` when no other attempt can pass (a gate the sandbox policy refuses,
    no test command): ``on_fail`` does not send an agent round after it. ``reason`` says
    what kind of "did not pass" it is: ``changes_requested`` (a review asking for another
    round, a normal part of the work) or ``failed``; the views show them differently.
    ``failure_class`` says whether a later attempt of the whole pipeline could pass
    (``transient``), could not (``permanent``), or is not known (None); the pipeline's
    run carries its failed step's class.
    """

    def __init__(
        self,
        failure: str,
        outputs: Mapping[str, Any] | None = None,
        *,
        retry: bool = True,
        reason: str = "failed",
        failure_class: Failure | None = None,
    ) -> None:
        super().__init__(failure)
        self.failure = failure
        self.outputs = dict(outputs or {})
        self.retry = retry
        self.reason = reason
        self.failure_class = failure_class


class Paused(Exception):
    """The pipeline must wait (a budget reached): resumable once the cause is fixed."""


class NeedsPerson(Exception):
    """Only a person may take this change further (it edits protected paths).

    Not a ``StepFailed``: no ``on_fail`` loop sends it back to an agent, and nothing
    retries it; the pipeline ends ``failed`` and its pull request stays open, marked.
    """


@dataclass
class State:
    """What the journal says: outputs by step, loop counts, where to continue."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    gotos: dict[str, int] = field(default_factory=dict)
    position: int = 0
    failure: tuple[str, str] | None = None  # (step id, failure text) for the next role step
    child: dict[str, str] = field(default_factory=dict)  # step id → its running child run id
    retrying: str | None = None  # the step a resumed, failed pipeline runs again

    @classmethod
    def replay(cls, run: Run, pipeline: Pipeline) -> State:
        """Where the journal says the pipeline is.

        A ``step.finish`` with status ``failed`` is what ended the pipeline: a resume
        starts at that step again (``retrying``), with its child run kept (a role step's
        agent may continue from its transcript) and its ``on_fail`` rounds counted
        afresh, instead of skipping past it as if it had passed.
        """
        state = cls()
        ids = [s.id for s in pipeline.steps]
        for event in read_journal(run.paths.events).events:
            kind, step = event.get("type"), str(event.get("step"))
            if kind == "pipeline.rewound":  # its checkout was another host's: from the top
                state = cls()
            elif kind == "step.child":
                state.child[step] = event["run_id"]
            elif kind == "step.finish" and event.get("status") == "failed":
                state.outputs[step] = event.get("outputs", {})
                state.position = ids.index(step)
                state.gotos.pop(step, None)
                state.retrying = step
            elif kind == "step.finish":
                state.outputs[step] = event.get("outputs", {})
                state.position = ids.index(step) + 1
                state.child.pop(step, None)
                if state.retrying == step:
                    state.retrying = None
                if event.get("status") == "ok" and state.failure and state.failure[0] == step:
                    state.failure = None
            elif kind == "step.goto":
                state.gotos[step] = event["count"]
                state.position = ids.index(event["to"])
                state.failure = (step, str(event["failure"]))
                for later in ids[state.position :]:
                    state.child.pop(later, None)
                if state.retrying in ids[state.position :]:
                    state.retrying = None
        return state


StepRunner = Callable[[Step, str, "Engine"], dict[str, Any]]


@dataclass
class Engine:
    run: Run
    config: Config
    name: str
    pipeline: Pipeline
    values: dict[str, Any]  # inputs, ticket, project, run: the template values
    runners: Mapping[str, StepRunner]  # "role" | "run" | "uses" → how to run that kind
    state: State = field(init=False)
    current_step: str = ""
    services: Services = field(init=False)  # the tracker and forge, made on first use

    def __post_init__(self) -> None:
        self.services = Services(self.config)
        self.state = State.replay(self.run, self.pipeline)
        feedback = self.values["inputs"].get("review_feedback")
        if feedback and not self.state.outputs:  # a PR's review comments start the first attempt
            self.state.failure = ("review", str(feedback))
        for step in self.pipeline.steps:  # a resumed pipeline works in the same worktree
            made = self.state.outputs.get(step.id, {})
            if step.uses != "git.worktree" or not made.get("path"):
                continue
            if made.get("checkout", str(self.repo_root())) != str(self.repo_root()):
                self._rewind(str(made["checkout"]))
                break
            self.values["run"].update(branch=made["branch"], worktree=made["path"])

    def _rewind(self, checkout: str) -> None:
        """Resumed in another checkout than its worktree's (another Celery worker's host):
        that worktree is not reachable here, so the pipeline starts over from its first
        step. What the earlier worker pushed is kept (the branch goes on from the forge's
        copy, the PR is found again); its agents, dead with it, are ended."""
        # lazy: the agent tier's process control, only for this rare move
        from agentctl.agent.supervise import end_children

        here = str(self.repo_root())
        end_children(self.run, "failed", f"its pipeline {self.run.id} moved to {here}")
        self.run.journal.append("pipeline.rewound", durable=True, was=checkout, checkout=here)
        self.state = State.replay(self.run, self.pipeline)

    def repo_root(self) -> Path:
        return self.config.workspace.git_root or self.config.workspace.root

    def template_values(self) -> dict[str, Any]:
        return {**self.values, "steps": self.state.outputs}

    def spent(self) -> Decimal:
        state_dir = self.config.workspace.state_dir
        return Ledger(state_dir).spent(since=None, run_ids=descendants(state_dir, self.run.id))

    def remaining_budget(self) -> Decimal | None:
        if self.pipeline.budget_usd is None:
            return None
        return self.pipeline.budget_usd - self.spent()

    def run_all(self) -> dict[str, Any]:
        """Run from where the journal says to the end; returns the pipeline's outputs."""
        steps = self.pipeline.steps
        while self.state.position < len(steps):
            step = steps[self.state.position]
            if step.when is not None and not holds(step.when, self.template_values()):
                self._finish(step, "skipped", {"status": "skipped"})
                continue
            remaining = self.remaining_budget()
            if remaining is not None and remaining <= 0 and step.kind == "role":
                raise Paused(f"pipeline budget ${float(self.pipeline.budget_usd or 0):g} reached")
            if self._guarded(step):
                self._check_protected(step)
            self.run.journal.append("step.start", durable=True, step=step.id, kind=step.kind)
            try:
                outputs = self.runners[step.kind](step, self._prompt_note(step), self)
            except StepFailed as failed:
                self._failed(step, failed)
                continue
            self._finish(step, "ok", {"status": "ok", **outputs})
        return self.state.outputs

    def _guarded(self, step: Step) -> bool:
        """Steps that lead to a merge: a verdict (review) and the merge queue.

        Checked here, not by an action a pipeline file could leave out.
        """
        if step.uses == "forge.merge":
            return True
        if step.role is None:
            return False
        try:
            return self.config.role(step.role).result == "verdict"
        except AgentctlError:
            return False  # an unknown role: the step itself says so

    def _check_protected(self, step: Step) -> None:
        """Stop before ``step`` when the branch's change touches a protected path."""
        branch, worktree = self.values["run"].get("branch"), self.values["run"].get("worktree")
        if not branch or not worktree:
            return  # no branch of its own: nothing here can be merged
        if not Path(worktree).is_dir():
            return  # removed after its merge; the merge queue checks again before any merge
        forge = self.services.forge
        base = str(self.values["project"]["base_branch"])
        paths = protected_changes(Path(worktree), forge.fetch(base), rules=rules_for(self.config))
        if not paths:
            return
        reason = describe(paths)
        pr = forge.find_pr(str(branch))
        if pr is not None and pr.state == "open":
            forge.mark_needs_person(pr.number, reason)
        self.run.journal.append(
            "step.needs_person", durable=True, step=step.id, paths=paths, pr=pr and pr.number
        )
        where = f"pull request #{pr.number}" if pr is not None else f"branch {branch}"
        raise NeedsPerson(f"{reason} ({where} waits for them)")

    def _prompt_note(self, step: Step) -> str:
        if step.kind != "role" or self.state.failure is None:
            return ""
        where, failure = self.state.failure
        return FAILURE_NOTE.format(step=where, failure=failure.strip()[-6000:])

    def _finish(self, step: Step, status: str, outputs: dict[str, Any]) -> None:
        self.run.journal.append(
            "step.finish", durable=True, step=step.id, status=status, outputs=outputs
        )
        self.state.outputs[step.id] = outputs
        self.state.position += 1
        self.state.child.pop(step.id, None)
        if self.state.retrying == step.id:
            self.state.retrying = None
        if status == "ok" and self.state.failure and self.state.failure[0] == step.id:
            self.state.failure = None  # the step that failed passes now: the note is done
        self.run.update(step=step.id)

    def _failed(self, step: Step, failed: StepFailed) -> None:
        outputs = {"status": "failed", "failure": failed.failure[-6000:], **failed.outputs}
        if step.on_fail is None or not failed.retry:
            self.run.journal.append(
                "step.finish", durable=True, step=step.id, status="failed", outputs=outputs
            )
            reason = f"step {step.id!r} failed: {bound(failed.failure, 2000)}"
            raise StepFailed(
                self._cause(reason, step),
                reason=failed.reason,
                failure_class=failed.failure_class,
            )
        count = self.state.gotos.get(step.id, 0) + 1
        if count > step.on_fail.max:
            self.run.journal.append(
                "step.finish", durable=True, step=step.id, status="failed", outputs=outputs
            )
            raise StepFailed(
                self._cause(
                    f"step {step.id!r} failed {count} times (on_fail max {step.on_fail.max}): "
                    f"{bound(failed.failure, 2000)}",
                    step,
                ),
                reason=failed.reason,
                failure_class=failed.failure_class,
            )
        self.state.outputs[step.id] = outputs
        self.run.journal.append(
            "step.goto",
            durable=True,
            step=step.id,
            to=step.on_fail.goto,
            count=count,
            reason=failed.reason,
            failure=failed.failure[-6000:],
            # what this round cost (a review that asked for changes): the live view adds it
            outputs={k: failed.outputs[k] for k in ("model", "cost") if k in failed.outputs},
        )
        ids = [s.id for s in self.pipeline.steps]
        self.state.gotos[step.id] = count
        self.state.position = ids.index(step.on_fail.goto)
        self.state.failure = (step.id, failed.failure)
        for later in ids[self.state.position :]:  # those steps run afresh: new child runs
            self.state.child.pop(later, None)
        self.state.retrying = None

    def _cause(self, reason: str, step: Step) -> str:
        """The pipeline's final reason: an earlier step's failure first, when it is the cause.

        A step that fails inside the round an earlier failure sent the pipeline back
        for (say the commit after a red merge gate: "the agent changed nothing") is not
        the first real cause; the reason names the earlier failure, then this one.
        """
        if self.state.failure is None:
            return reason
        where, failure = self.state.failure
        if where == step.id or not self.state.gotos.get(where):
            return reason  # the same step again, or a PR review's request (no step of ours)
        # Bounded so that both fit where a reason is shown (the summary shows 1500).
        earlier = clip(f"step {where!r} failed: {failure.strip()}", CAUSE_CHARS)
        return f"{earlier}\nthen {clip(reason, CAUSE_CHARS)}"

    def render(self, template: str) -> str:
        return render(template, self.template_values())
