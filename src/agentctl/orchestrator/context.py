"""What every duty of one tick shares: the workspace, the clock, the report, the state.

A ``TickContext`` is made by ``Tick.run`` under the tick lock, once the state is
loaded, and handed to each part (``reaping``, ``dispatch``, ``prs``, ``duties``,
``items``). It also holds what is read once a tick: the live runs, the ready
tickets, the preflight answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl.config import Config
from agentctl.config.schema import Orchestrator
from agentctl.errors import AgentctlError
from agentctl.forges import Forge
from agentctl.orchestrator.attempts import Attempts
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.report import TickReport
from agentctl.pipeline.services import Services
from agentctl.runs import TERMINAL, Listing, Run, RunRecord, RunStore
from agentctl.trackers import Ticket, Tracker


@dataclass
class TickContext:
    config: Config
    clock: Callable[[], datetime]
    dry_run: bool
    report: TickReport
    parent_id: str | None  # a chat that started this orchestrator owns its runs' costs
    home: Home
    store: RunStore
    attempts: Attempts
    services: Services
    said: set[str] = field(default_factory=set)  # items whose wait was said this tick
    would_start: int = 0  # pipelines a dry run would have started
    resumed: set[str] = field(default_factory=set)  # pipelines the reaper resumed this tick
    ready: list[Ticket] | None = None  # the tracker's ready tickets, once polled
    preflights: dict[str, bool] = field(default_factory=dict)  # pipeline → may start
    _live: list[Listing] | None = None
    _kinds: dict[str, str] = field(default_factory=dict)  # run id → kind, for parents

    @property
    def orch(self) -> Orchestrator:
        return self.config.settings.orchestrator

    @property
    def state_dir(self) -> Path:
        return self.config.workspace.state_dir

    @property
    def git_root(self) -> Path:
        return self.config.workspace.git_root or self.config.workspace.root

    @property
    def tracker(self) -> Tracker:
        return self.services.tracker

    @property
    def forge(self) -> Forge:
        return self.services.forge

    def save(self, state: dict[str, Any]) -> None:
        """An attempt is remembered the moment it starts, not at the tick's end."""
        if not self.dry_run:
            self.home.save_state(state)

    def live(self) -> list[Listing]:
        """Unfinished runs from the live index, read once per tick (each has a record)."""
        if self._live is None:
            self._live = [
                listing
                for listing in self.store.live()
                if listing.record is not None
                and listing.record.status not in TERMINAL
                and listing.record.status != "paused"
            ]
        return self._live

    def changed_runs(self) -> None:
        self._live = None  # a run was started, resumed or ended: list again

    def parent(self) -> Run | None:
        return self.store.get(self.parent_id) if self.parent_id else None

    def tick_owns(self, record: RunRecord) -> bool:
        """A step's agent is its pipeline's business; a run a chat started is the tick's.

        A chat that starts the orchestrator is the parent of its pipelines (for costs),
        and those must be reaped and watched like any other top-level run.
        """
        if record.parent_id is None:
            return True
        kind = self._kinds.get(record.parent_id)
        if kind is None:
            try:
                kind = self.store.get(record.parent_id).load().kind
            except AgentctlError:
                kind = "?"  # the parent is gone: nobody else will look after this run
            self._kinds[record.parent_id] = kind
        return kind != "pipeline"
