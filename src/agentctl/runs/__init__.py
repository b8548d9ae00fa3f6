"""Run directories: the on-disk protocol between agentctl processes.

Only the standard library is imported here: ``agentctl runs list`` imports this
package and must start fast with a thousand runs on disk.
"""

from agentctl.runs.ids import KINDS, new_run_id, parse_run_id
from agentctl.runs.journal import Journal, JournalRead, follow, read_journal
from agentctl.runs.liveness import pid_alive, process_start_token, stale_reason, this_host
from agentctl.runs.mailbox import Mailbox, Message
from agentctl.runs.record import (
    SCHEMA_VERSION,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    RunRecord,
    Status,
    check_transition,
)
from agentctl.runs.run import Run, RunPaths
from agentctl.runs.store import Listing, RunStore
from agentctl.runs.timefmt import format_ts, parse_ts, utc_now

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "Journal",
    "JournalRead",
    "Listing",
    "Mailbox",
    "Message",
    "Run",
    "RunPaths",
    "RunRecord",
    "RunStore",
    "Status",
    "check_transition",
    "follow",
    "format_ts",
    "new_run_id",
    "parse_run_id",
    "parse_ts",
    "pid_alive",
    "process_start_token",
    "read_journal",
    "stale_reason",
    "this_host",
    "utc_now",
]
