"""A check result: what ``doctor`` prints, and what every seam that can check itself returns.

Shared by the commands and by the trackers, forges and tools that check their own
set-up (a key, a team, a repository, a sandbox), so none of them imports ``doctor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None
