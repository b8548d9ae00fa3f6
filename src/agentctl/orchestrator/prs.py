"""The tick's watch over open pull requests no live pipeline owns.

Review missing → a ``review-pr`` pipeline; approved → the merge queue, then the
ticket to Done; changes requested → the coding pipeline again (a fix round); marked
as waiting for a person → nothing, said once. Each of those is an attempt of the
PR's item (its ticket, else its branch) and obeys ``max_parallel``; a parked item's
PR is left alone.
"""

from __future__ import annotations

from typing import Any

from agentctl import failpoints
from agentctl.errors import AgentctlError
from agentctl.orchestrator.attempts import item_key
from agentctl.orchestrator.items import Items

SETTLED_KEPT = 500  # merged PRs remembered as settled (more than a forge lists at once)


class PullRequests(Items):
    def _forge(self) -> Any:
        raise NotImplementedError

    def _preflight(self, pipeline: str) -> bool:
        raise NotImplementedError

    def _live(self) -> list[Any]:
        raise NotImplementedError

    def _parent(self) -> Any:
        raise NotImplementedError

    def _changed_runs(self) -> None:
        raise NotImplementedError

    def _owned_branches(self) -> set[str]:
        """Branches a live pipeline works on: their PRs are that pipeline's business.

        A pipeline the reaper resumed this tick counts too: it is ``failed`` until its
        new worker starts, and a merge or review of its PR meanwhile would race it.
        """
        owned = set()
        ids = [x.id for x in self._live() if x.record.kind == "pipeline"]
        for run_id in [*ids, *sorted(self._resumed - set(ids))]:
            data = self.store.get(run_id).read_input()
            if data.get("ticket"):
                owned.add(f"agentctl/{data['ticket']['id']}")
            branch = data.get("inputs", {}).get("branch")
            if branch:
                owned.add(branch)
        return owned

    def _watch_prs(self, state: dict[str, Any]) -> None:
        forge = self._forge()
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
            pending = self.attempts.pending(key)
            if pending and pending.get("what") == "fix":  # the merge gate failed last time
                self._back_to_dev(state, pr, "the merge was refused", pending.get("feedback"))
                continue
            if pending:
                self.attempts.clear_pending(key)  # the PR's review state says what is next
            if pr.review_state == "approved":
                self._merge(state, pr, key, label)
            elif pr.review_state == "changes_requested":
                self._back_to_dev(state, pr, "review requested changes")
            elif (
                not self.dry_run
                and self._preflight("review-pr")
                and self._may_act(key, label)
                and self._slot(label)
            ):
                self._review(state, pr, key, label)
                owned.add(pr.branch)
        self._retry_pending(state, open_tickets)

    def _review(self, state: dict[str, Any], pr: Any, key: str, label: str) -> None:
        from agentctl.pipeline.process import start_pipeline

        run = start_pipeline(
            self.config,
            "review-pr",
            inputs={"branch": pr.branch},
            parent=self._parent(),
            preflight=False,
        )
        self._changed_runs()
        self._count(state, key, "review", run)
        self.report.started.append(f"{label}: review-pr {run.id}")

    def _merge(self, state: dict[str, Any], pr: Any, key: str, label: str) -> None:
        from agentctl.pipeline.lookup import base_branch
        from agentctl.repo.mergequeue import merge_pr
        from agentctl.repo.protected import rules_for
        from agentctl.tools.gate import GateSandbox

        if self.dry_run:
            self.report.merged.append(f"{label}: would merge")
            return
        if not self._may_act(key, label):
            return
        self._count(state, key, "merge")
        root = self.config.workspace.git_root or self.config.workspace.root
        failpoints.hit("orchestrator.before_merge")
        try:
            outcome = merge_pr(
                self._forge(),
                pr.number,
                repo_root=root,
                state_dir=self.state_dir,
                gate=self.config.settings.project.test_command or None,
                journal=self.home.ticks,
                protected=rules_for(self.config),
                sandbox=GateSandbox.of(self.config),
                gate_home=self.home.dir / "gates" / f"pr-{pr.number}",
            )
        except AgentctlError as exc:  # refused (dirty base checkout, moved head...)
            self._failed(key, label, f"merge refused: {exc}", "transient")
            return
        failpoints.hit("orchestrator.after_merge")
        if outcome.status == "protected":  # the queue marked it: a person merges it
            self._waits_for_person(state, pr, outcome.detail)
        elif outcome.merged:
            self.report.merged.append(f"{label}: {str(outcome.sha)[:12]}")
            self.report.waiting.extend(f"{label}: {why}" for why in outcome.kept)
            self._to_done(
                state,
                pr,
                f"Merged into {base_branch(self.config)} at {outcome.sha} (PR #{pr.number}).",
            )
        else:
            tail = outcome.gate_output[-3000:]
            feedback = (
                f"The merge queue refused the merge ({outcome.status}): "
                f"{outcome.detail}\n{tail}".strip()
            )
            pending = {"what": "fix", "feedback": feedback} if pr.ticket else None
            reason = f"merge {outcome.status}: {outcome.detail}"
            self._failed(key, label, reason, "transient", pending=pending)

    def _waits_for_person(self, state: dict[str, Any], pr: Any, why: str) -> None:
        """Say once that a PR waits for a person; later ticks pass it over in silence."""
        said: list[int] = state.setdefault("needs_person_reported", [])
        if pr.number in said:
            return
        self.report.needs_person.append(
            f"PR #{pr.number} ({pr.ticket or pr.branch}): waiting for a person: {why}"
        )
        if not self.dry_run:
            said.append(pr.number)
            del said[:-SETTLED_KEPT]

    def _settle_merged(self, state: dict[str, Any], forge: Any, owned: set[str]) -> None:
        """Merged PRs whose ticket was not yet moved, or whose worktree and branch are
        still here (a tick or pipeline killed after its merge)."""
        from agentctl.errors import NotFoundError

        settled: list[int] = state.setdefault("settled_prs", [])
        del settled[:-SETTLED_KEPT]
        leftovers = self._local_agent_branches() - owned
        for pr in forge.list_prs(state="merged"):
            if pr.branch in leftovers and not self.dry_run:
                leftovers.discard(pr.branch)  # the newest merged PR of a branch decides
                self._remove_merged(pr)
            if not pr.ticket or pr.number in settled:
                continue
            try:
                closed = self._tracker().get(pr.ticket).closed
            except NotFoundError:  # a branch named like a ticket the tracker never had
                closed = True
            if closed:
                settled.append(pr.number)
                self.attempts.succeeded(item_key(pr.ticket, pr.branch))
                continue
            self.report.merged.append(f"PR #{pr.number} ({pr.ticket}): ticket moved to Done")
            if not self.dry_run:
                self._to_done(state, pr, f"Merged at {pr.merge_sha} (PR #{pr.number}).")

    def _local_agent_branches(self) -> set[str]:
        from agentctl.repo import gitops

        root = self.config.workspace.git_root or self.config.workspace.root
        try:
            return gitops.local_branches(root, gitops.AGENT_BRANCHES)
        except AgentctlError as exc:
            self.report.errors.append(f"cannot list the local agentctl/* branches: {exc}")
            return set()

    def _remove_merged(self, pr: Any) -> None:
        """A merged PR's worktree and local branch, left by a crash after its merge."""
        from agentctl.repo.mergequeue import remove_merged

        root = self.config.workspace.git_root or self.config.workspace.root
        try:
            kept = remove_merged(root, self.state_dir, pr.branch, pr.head_sha)
        except AgentctlError as exc:
            self.report.errors.append(f"PR #{pr.number}: clean-up after its merge: {exc}")
            return
        for why in kept:
            self.report.waiting.append(f"PR #{pr.number}: {why}")

    def _to_done(self, state: dict[str, Any], pr: Any, comment: str) -> None:
        """Ticket to Done, said once; a permanent refusal is reported, never retried."""
        from agentctl.errors import ServiceUnavailableError

        settled: list[int] = state.setdefault("settled_prs", [])
        self.attempts.succeeded(item_key(pr.ticket, pr.branch))  # merged: the item is settled
        if not pr.ticket:
            settled.append(pr.number)
            return
        tracker = self._tracker()
        try:
            tracker.set_state(pr.ticket, "Done")
        except ServiceUnavailableError:
            raise  # worth another try next tick
        except AgentctlError as exc:
            settled.append(pr.number)
            self.report.errors.append(f"{pr.ticket}: not moved to Done: {exc}")
            return
        settled.append(pr.number)
        tracker.comment(pr.ticket, comment)

    def _back_to_dev(
        self, state: dict[str, Any], pr: Any, why: str, feedback: str | None = None
    ) -> None:
        """A fix round: the ticket's pipeline again (review comments are read from the PR
        by the pipeline itself; a merge gate's log tail is handed over here)."""
        label = f"PR #{pr.number} ({pr.ticket or pr.branch})"
        if not pr.ticket:
            self.report.waiting.append(f"{label}: {why}; no ticket to send back to")
            return
        key = item_key(pr.ticket, pr.branch)
        if not self._may_act(key, label) or not self._slot(label):
            return
        if self._start(
            state, pr.ticket, self.orch.pipeline, claim=False, what="fix round", feedback=feedback
        ):
            self.report.started[-1] += f" (fix round: {why})"
