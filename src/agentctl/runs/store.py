"""``<state>/runs/``: make runs, find them by a short reference, list them fast.

Construction touches nothing on disk, so read-only commands never write. A new run
is assembled under a temp name and renamed into place once ``input.json`` and
``run.json`` exist: a listing sees a whole run or no run.

Two indexes spare readers a walk over every run: ``.live/`` names the unfinished
runs, and a run's ``children/`` names the runs made with it as parent. Both are
written before the state they follow and checked on read, never trusted blindly.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentctl import atomic, failpoints, keystore
from agentctl.errors import NotFoundError, StateError, UsageError
from agentctl.runs.ids import KINDS, new_run_id, parse_run_id, run_ids_in
from agentctl.runs.oserrors import state_error
from agentctl.runs.record import STATUSES, RunRecord
from agentctl.runs.run import LIVE, Run, load_record, mark_live, mtime_of
from agentctl.runs.timefmt import compact_ts, utc_now

_SHOWN_CANDIDATES = 5
_UNPUBLISHED_GRACE = timedelta(hours=1)
CHILDREN = "children"  # <run>/children/<child id>: made before the child is published


@dataclass(frozen=True, slots=True)
class Listing:
    """One row of ``runs list``: the record, or the problem that kept it from loading."""

    id: str
    dir: Path
    record: RunRecord | None
    problem: str | None
    heartbeat_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Entry:
    """What ``_listing`` needs of a run directory: its name and its path."""

    name: str
    path: str

    @classmethod
    def of(cls, directory: Path) -> _Entry:
        return cls(directory.name, str(directory))


class RunStore:
    def __init__(self, state_dir: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.state_dir = state_dir
        self.runs_dir = state_dir / "runs"
        self._clock = clock

    def create(
        self,
        kind: str,
        *,
        input: dict[str, Any],
        parent: Run | None = None,
        role: str | None = None,
        model: str | None = None,
        pipeline: str | None = None,
        step: str | None = None,
        ticket: str | None = None,
        workspace: str | None = None,
        worktree: str | None = None,
    ) -> Run:
        """Make a pending run; ``input.json`` is written first, then ``run.json``."""
        if not isinstance(input, dict):
            raise TypeError("input must be a dict")
        now = self._clock()
        run_id = new_run_id(kind, now)
        parent_id, root_id = None, run_id
        if parent is not None:
            parent_id, root_id = parent.id, parent.load().root_id
        record = RunRecord(
            id=run_id,
            kind=kind,
            status="pending",
            created_at=now,
            updated_at=now,
            root_id=root_id,
            parent_id=parent_id,
            role=role,
            model=model,
            pipeline=pipeline,
            step=step,
            ticket=ticket,
            workspace=workspace,
            worktree=worktree,
        )
        final = self.runs_dir / run_id
        tmp = self.runs_dir / f".{run_id}{atomic.TEMP_MARK}{os.getpid()}"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            scrub = keystore.redactor().redact_obj
            atomic.write_json(tmp / "input.json", scrub(input))
            atomic.write_json(tmp / "run.json", scrub(record.to_json()))
            (tmp / "inbox").mkdir()
            (tmp / "outbox").mkdir()
            (tmp / CHILDREN).mkdir()  # this run's children will be indexed: see children()
            os.close(os.open(tmp / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            atomic.fsync_dir(tmp)
            failpoints.hit("runs.before_publish")
            if parent is not None:
                _mark_child(parent.dir, run_id)  # before it exists: never a child missing
            mark_live(final, True)  # indexed before it exists: never a live run missing
            os.rename(tmp, final)
            atomic.fsync_dir(self.runs_dir)
        except BaseException as exc:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise state_error(exc, final, "create") from exc
            raise
        return Run(final, clock=self._clock)

    def get(self, ref: str) -> Run:
        """A run by exact id, unique id prefix, or unique suffix (e.g. the random part)."""
        if not ref:
            raise UsageError("empty run reference", hint="give a run id or part of one")
        if parse_run_id(ref) is not None and (self.runs_dir / ref).is_dir():
            return Run(self.runs_dir / ref, clock=self._clock)  # a whole id: no listing
        names = self._run_names()
        if ref in names:
            return Run(self.runs_dir / ref, clock=self._clock)
        matches = sorted((n for n in names if n.startswith(ref) or n.endswith(ref)), reverse=True)
        if len(matches) == 1:
            return Run(self.runs_dir / matches[0], clock=self._clock)
        if not matches:
            raise NotFoundError(
                f"no run matches {ref!r}", hint="run `agentctl runs list` to see the runs"
            )
        shown = ", ".join(matches[:_SHOWN_CANDIDATES])
        more = ", ..." if len(matches) > _SHOWN_CANDIDATES else ""
        raise UsageError(
            f"{ref!r} matches {len(matches)} runs: {shown}{more}", hint="give more of the id"
        )

    def list(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        since: datetime | None = None,
    ) -> builtins.list[Listing]:
        """Runs newest first. A run whose ``run.json`` cannot be read is listed with its
        problem (and dropped by a ``status``/``parent_id`` filter, which it cannot match).

        ``since`` keeps runs created at or after it, judged by the id alone: older
        runs' records are not read.
        """
        return self.page(kind=kind, status=status, parent_id=parent_id, since=since)[0]

    def page(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
        since: datetime | None = None,
    ) -> tuple[builtins.list[Listing], int]:
        """The newest ``limit`` matching runs and how many match in all.

        Without a status or parent filter the count comes from the directory names
        alone, so showing the newest 30 of 10,000 runs reads 30 ``run.json`` files.
        """
        if kind is not None and kind not in KINDS:
            raise UsageError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        try:
            names = run_ids_in(os.listdir(self.runs_dir), kind)  # no stat, no object a name
        except FileNotFoundError:
            return [], 0
        except OSError as exc:
            raise state_error(exc, self.runs_dir, "list") from exc
        if since is not None:
            made_since = compact_ts(since.astimezone(UTC))
            names = [name for name in names if name >= made_since]  # ids begin with it
        names.sort(reverse=True)
        filtered = status is not None or parent_id is not None
        if not filtered and limit is not None:
            shown: builtins.list[Listing] = []
            for name in names:
                if len(shown) == limit:
                    break
                directory = os.path.join(self.runs_dir, name)
                if os.path.isdir(directory):
                    shown.append(self._listing(_Entry(name, directory)))
            return shown, len(names)
        listings = []
        for name in names:
            directory = os.path.join(self.runs_dir, name)
            if not os.path.isdir(directory):
                continue
            listing = self._listing(_Entry(name, directory))
            record = listing.record
            if status is not None and (record is None or record.status != status):
                continue
            if parent_id is not None and (record is None or record.parent_id != parent_id):
                continue
            listings.append(listing)
        total = len(listings)
        return (listings if limit is None else listings[:limit]), total

    def live(self) -> builtins.list[Listing]:
        """Unfinished runs (pending, running, paused) from the index, newest first.

        The index is a hint kept before the state it follows, so it may name a run
        that has since ended or never got published: those are checked and dropped.
        """
        try:
            names = sorted(os.listdir(self.runs_dir / LIVE), reverse=True)
        except FileNotFoundError:
            return []
        listings = []
        for name in names:
            directory = self.runs_dir / name
            if not directory.is_dir():
                self._drop_unpublished(self.runs_dir / LIVE / name)
                continue
            listing = self._listing(_Entry.of(directory))
            if listing.record is not None and listing.record.terminal:
                continue
            listings.append(listing)
        return listings

    def _drop_unpublished(self, marker: Path) -> None:
        """Forget a live marker whose run never got published, once it is clearly dead.

        ``create`` marks a run live just before renaming it into place: a young marker
        without its directory may be a create in progress, and dropping it would hide
        that run from the reaper for good.
        """
        made = mtime_of(marker)
        if made is not None and utc_now() - made > _UNPUBLISHED_GRACE:  # mtimes are real time
            marker.unlink(missing_ok=True)

    def children(self, run_id: str) -> builtins.list[Listing]:
        """Runs made with ``run_id`` as parent, newest first, without listing every run.

        Read from the parent's ``children/`` index; each named child is checked (it
        exists and its record names this parent; an unreadable one is kept, with its
        problem, as ``list(parent_id=...)`` cannot). A run made before the index
        existed has no ``children/`` and is answered by the full listing.
        """
        indexed = self._indexed_children(run_id)
        return indexed if indexed is not None else self.list(parent_id=run_id)

    def descendants(self, run_id: str) -> set[str]:
        """``run_id`` and every run below it, through each run's children index.

        Runs from before the index are answered by one full listing for them all.
        """
        found = {run_id}
        todo = [run_id]
        unindexed: dict[str, builtins.list[str]] | None = None
        while todo:
            parent = todo.pop()
            indexed = self._indexed_children(parent)
            if indexed is not None:
                ids = [listing.id for listing in indexed]
            else:
                if unindexed is None:
                    unindexed = {}
                    for listing in self.list():
                        record = listing.record
                        if record is not None and record.parent_id is not None:
                            unindexed.setdefault(record.parent_id, []).append(listing.id)
                ids = unindexed.get(parent, [])
            for child in ids:
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def _indexed_children(self, run_id: str) -> builtins.list[Listing] | None:
        """The checked children named in ``run_id``'s index; None if it has none."""
        index = self.runs_dir / run_id / CHILDREN
        try:
            names = sorted(os.listdir(index), reverse=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise state_error(exc, index, "list") from exc
        listings = []
        for name in names:
            directory = self.runs_dir / name
            if parse_run_id(name) is None or not directory.is_dir():
                continue  # named but never published (a create that died), or removed
            listing = self._listing(_Entry.of(directory))
            if listing.record is not None and listing.record.parent_id != run_id:
                continue
            listings.append(listing)
        return listings

    def _listing(self, entry: _Entry) -> Listing:
        record: RunRecord | None = None
        problem: str | None = None
        try:
            record = load_record(os.path.join(entry.path, "run.json"), entry.name)
        except StateError as exc:
            problem = str(exc)
        heartbeat_at = mtime_of(os.path.join(entry.path, "heartbeat"))
        return Listing(entry.name, Path(entry.path), record, problem, heartbeat_at)

    def _run_names(self) -> set[str]:
        try:
            names = os.listdir(self.runs_dir)
        except FileNotFoundError:
            return set()
        except OSError as exc:
            raise state_error(exc, self.runs_dir, "list") from exc
        return {name for name in names if parse_run_id(name) is not None}


def _mark_child(parent_dir: Path, child_id: str) -> None:
    """Name ``child_id`` in its parent's index, durably, before the child is published.

    A parent made before the index existed has no ``children/``: it is not given one,
    which would claim its older children are all listed there.
    """
    index = parent_dir / CHILDREN
    if not index.is_dir():
        return
    os.close(os.open(index / child_id, os.O_WRONLY | os.O_CREAT, 0o644))
    atomic.fsync_dir(index)
