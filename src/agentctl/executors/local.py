"""The embedded executor: a pipeline process started on this machine, in its own session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentctl.agent.launch import spawn_worker
from agentctl.config import Config
from agentctl.runs import Run


@dataclass(frozen=True)
class LocalExecutor:
    config: Config

    def submit(self, run: Run, environ: Mapping[str, str] | None = None) -> None:
        spawn_worker(self.config, run, environ, group="pipeline")

    def cancel(self, run: Run) -> None:
        """Nothing more to do: a local run's process group is signalled by the cancel."""

    def describe(self) -> str:
        return "local processes"
