"""The tick's watch over open pull requests no live pipeline owns.

Review missing → a ``review-pr`` pipeline; approved → the merge queue, then the
ticket to Done; changes requested → the coding pipeline again (a fix round); marked
as waiting for a person → nothing, said once. Each of those is an attempt of the
PR's item (its ticket, else its branch) and obeys ``max_parallel``; a parked item's
PR is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentctl import failpoints
from agentctl.errors import AgentctlError, NotFoundError, ServiceUnavailableError
from agentctl.forges import Forge, PullRequest
from agentctl.orchestrator.attempts import item_key
from agentctl.orchestrator.context import TickContext
from agentctl.orchestrator.dispatch import Dispatch
from agentctl.orchestrator.items import Items
from agentctl.repo import gitops

SETTLED_KEPT = 500  # merged PRs remembered as settled (more than a forge lists at once)


@dataclass
class PullRequestWatch:
    ctx: TickContext
    items: Items
    dispatch: Dispatch

    def _owned_branches(self) -> set[str]:
        """Branches a live pipeline works on: their PRs are that pipeline's business.

        A pipeline the reaper resumed this tick counts too: it is ``failed`` until its
        new worker starts, and a merge or review of its PR meanwhile would race it.
        """
        owned: set[str] = set()
        ids = [x.id for x in self.ctx.live() if x.record and x.record.kind == "pipeline"]
        for run_id in [*ids, *sorted(self.ctx.resumed - set(ids))]:
            data = self.ctx.store.get(run_id).read_input()
            if data.get("ticket"):
                owned.add(f"agentctl/{data['ticket']['id']}")
            branch = data.get("inputs", {}).get("branch")
            if branch:
                owned.add(branch)
        return owned

    def watch(self, state: dict[str, Any]) -> None:
        forge = self.ctx.forge
        owned = self._owned_branches()
        self._settle_merged(state, forge, owned)
        open_tickets: set[str] = set()
        for pr in forge.list_prs(state="open"):
            if pr.ticket:
                open_tickets.add(pr.ticket)
            if pr.branch in owned:
                continue
            label = f"PR #{pr.number} ({pr.ticket or pr.branch})"
            key = item_key(pr.ticket, pr.branch)
            if pr.needs_person:  # protected paths: no review, no dev round, no merge
                self._waits_for_person(state, pr, pr.needs_person)
                continue
            pending = self.ctx.attempts.pending(key)
            if pending and pending.get("what") == "fix":  # the merge gate failed last time
                self._back_to_dev(state, pr, "the merge was refused", pending.get("feedback"))
                continue
            if pending:
                self.ctx.attempts.clear_pending(key)  # the PR's review state says what is next
            if pr.review_state == "approved":
                self._merge(state, pr, key, label)
            elif pr.review_state == "changes_requested":
                self._back_to_dev(state, pr, "review requested changes")
            elif (
                not self.ctx.dry_run
                and self.dispatch.preflight("review-pr")
                and self.items.may_act(key, label)
                and self.items.slot(label)
            ):
                self._review(state, pr, key, label)
                owned.add(pr.branch)
        self.dispatch.retry_pending(state, open_tickets)

    def _review(self, state: dict[str, Any], pr: PullRequest, key: str, label: str) -> None:
        # lazy: the pipeline engine and its steps, only when a review starts
        from agentctl.pipeline.process import start_pipeline

        run = start_pipeline(
            self.ctx.config,
            "review-pr",
            inputs={"branch": pr.branch},
            parent=self.ctx.parent(),
            preflight=False,
        )
        self.ctx.changed_runs()
        self.items.count(state, key, "review", run)
        self.ctx.report.started.append(f"{label}: review-pr {run.id}")

    def _merge(self, state: dict[str, Any], pr: PullRequest, key: str, label: str) -> None:
        # lazy: the merge queue, its gate sandbox and the pipeline engine, only for a merge
        from agentctl.pipeline.lookup import base_branch
        from agentctl.pipeline.mergequeue import merge_pr
        from agentctl.repo.protected import rules_for
        from agentctl.tools.gate import GateSandbox

        if self.ctx.dry_run:
            self.ctx.report.merged.append(f"{label}: would merge")
            return
        if not self.items.may_act(key, label):
            return
        self.items.count(state, key, "merge")
        root = self.ctx.git_root
        failpoints.hit("orchestrator.before_merge")
        try:
            outcome = merge_pr(
                self.ctx.forge,
                pr.number,
                repo_root=root,
                state_dir=self.ctx.state_dir,
                gate=self.ctx.config.settings.project.test_command or None,
                journal=self.ctx.home.ticks,
                protected=rules_for(self.ctx.config),
                sandbox=GateSandbox.of(self.ctx.config),
                gate_home=self.ctx.home.dir / "gates" / f"pr-{pr.number}",
            )
        except AgentctlError as exc:  # refused (dirty base checkout, moved head...)
            self.items.failed(key, label, f"merge refused: {exc}", "transient")
            return
        failpoints.hit("orchestrator.after_merge")
        if outcome.status == "protected":  # the queue marked it: a person merges it
            self._waits_for_person(state, pr, outcome.detail)
        elif outcome.merged:
            self.ctx.report.merged.append(f"{label}: {str(outcome.sha)[:12]}")
            self.ctx.report.waiting.extend(f"{label}: {why}" for why in outcome.kept)
            self._to_done(
                state,
                pr,
                f"Merged into {base_branch(self.ctx.config)} at {outcome.sha} (PR #{pr.number}).",
            )
        else:
            tail = outcome.gate_output[-3000:]
            feedback = (
                f"The merge queue refused the merge ({outcome.status}): "
                f"{outcome.detail}\n{tail}".strip()
            )
            pending = {"what": "fix", "feedback": feedback} if pr.ticket else None
            reason = f"merge {outcome.status}: {outcome.detail}"
            self.items.failed(key, label, reason, "transient", pending=pending)

    def _waits_for_person(self, state: dict[str, Any], pr: PullRequest, why: str) -> None:
        """Say once that a PR waits for a person; later ticks pass it over in silence."""
        said: list[int] = state.setdefault("needs_person_reported", [])
        if pr.number in said:
            return
        self.ctx.report.needs_person.append(
            f"PR #{pr.number} ({pr.ticket or pr.branch}): waiting for a person: {why}"
        )
        if not self.ctx.dry_run:
            said.append(pr.number)
            del said[:-SETTLED_KEPT]

    def _settle_merged(self, state: dict[str, Any], forge: Forge, owned: set[str]) -> None:
        """Merged PRs whose ticket was not yet moved, or whose worktree and branch are
        still here (a tick or pipeline killed after its merge)."""
        settled: list[int] = state.setdefault("settled_prs", [])
        del settled[:-SETTLED_KEPT]
        leftovers = self._local_agent_branches() - owned
        for pr in forge.list_prs(state="merged"):
            if pr.branch in leftovers and not self.ctx.dry_run:
                leftovers.discard(pr.branch)  # the newest merged PR of a branch decides
                self._remove_merged(pr)
            if not pr.ticket or pr.number in settled:
                continue
            try:
                closed = self.ctx.tracker.get(pr.ticket).closed
            except NotFoundError:  # a branch named like a ticket the tracker never had
                closed = True
            if closed:
                settled.append(pr.number)
                self.ctx.attempts.succeeded(item_key(pr.ticket, pr.branch))
                continue
            self.ctx.report.merged.append(f"PR #{pr.number} ({pr.ticket}): ticket moved to Done")
            if not self.ctx.dry_run:
                self._to_done(state, pr, f"Merged at {pr.merge_sha} (PR #{pr.number}).")

    def _local_agent_branches(self) -> set[str]:
        root = self.ctx.git_root
        try:
            return gitops.local_branches(root, gitops.AGENT_BRANCHES)
        except AgentctlError as exc:
            self.ctx.report.errors.append(f"cannot list the local agentctl/* branches: {exc}")
            return set()

    def _remove_merged(self, pr: PullRequest) -> None:
        """A merged PR's worktree and local branch, left by a crash after its merge."""
        # lazy: the merge queue (and the gate sandbox), only after a crash left a merge
        from agentctl.pipeline.mergequeue import remove_merged

        root = self.ctx.git_root
        try:
            kept = remove_merged(root, self.ctx.state_dir, pr.branch, pr.head_sha)
        except AgentctlError as exc:
            self.ctx.report.errors.append(f"PR #{pr.number}: clean-up after its merge: {exc}")
            return
        for why in kept:
            self.ctx.report.waiting.append(f"PR #{pr.number}: {why}")

    def _to_done(self, state: dict[str, Any], pr: PullRequest, comment: str) -> None:
        """Ticket to Done, said once; a permanent refusal is reported, never retried."""
        settled: list[int] = state.setdefault("settled_prs", [])
        self.ctx.attempts.succeeded(item_key(pr.ticket, pr.branch))  # merged: the item is settled
        if not pr.ticket:
            settled.append(pr.number)
            return
        tracker = self.ctx.tracker
        try:
            tracker.set_state(pr.ticket, "Done")
        except ServiceUnavailableError:
            raise  # worth another try next tick
        except AgentctlError as exc:
            settled.append(pr.number)
            self.ctx.report.errors.append(f"{pr.ticket}: not moved to Done: {exc}")
            return
        settled.append(pr.number)
        tracker.comment(pr.ticket, comment)

    def _back_to_dev(
        self, state: dict[str, Any], pr: PullRequest, why: str, feedback: str | None = None
    ) -> None:
        """A fix round: the ticket's pipeline again (review comments are read from the PR
        by the pipeline itself; a merge gate's log tail is handed over here)."""
        label = f"PR #{pr.number} ({pr.ticket or pr.branch})"
        if not pr.ticket:
            self.ctx.report.waiting.append(f"{label}: {why}; no ticket to send back to")
            return
        key = item_key(pr.ticket, pr.branch)
        if not self.items.may_act(key, label) or not self.items.slot(label):
            return
        pipeline = self.ctx.orch.pipeline
        if self.dispatch.start(
            state, pr.ticket, pipeline, claim=False, what="fix round", feedback=feedback
        ):
            self.ctx.report.started[-1] += f" (fix round: {why})"
