"""The workspace's tracker and forge for one process, each made on first use and kept."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from agentctl.forges import Forge, make_forge
from agentctl.trackers import Tracker, make_tracker

if TYPE_CHECKING:
    from agentctl.config import Config


class Services:
    """A local run never needs a token, and a tick that only reaps never imports gql."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def tracker(self) -> Tracker:
        return make_tracker(self.config)

    @cached_property
    def forge(self) -> Forge:
        return make_forge(self.config)
