"""The one metered call: reserved before it is sent, priced into the ledger after.

Agents, the chat, the orchestrator's triage, ``agentctl ask`` and ``models test``
all call through ``Meter.call`` (a ``Meter`` owns the ``Caller`` it sends with).
For each model of the chain it tries, the call first reserves
the most that model can cost (``upper_bound``) against every cap; a fallback to
another model reserves again, at that model's price, and the failed model's
reservation is released. A model whose own daily cap is spent is skipped when a
later model of the chain may answer; any other refusal raises ``BudgetRefused``
(callers pause or fail with its reason). The answer's real cost settles the
reservation into the ledger and the run's journal (``llm.call``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.config import Config
from agentctl.cost import fallback
from agentctl.cost.budget import Decision, Tree
from agentctl.cost.ledger import Entry, Ledger
from agentctl.cost.pricing import upper_bound
from agentctl.cost.report import descendants
from agentctl.cost.reserve import BudgetRefused, Hold, Reservations
from agentctl.errors import AgentctlError, TransientError
from agentctl.llm.call import Attempt, Caller, Outcome
from agentctl.llm.types import OnEvent, Request
from agentctl.runs import Run, RunStore
from agentctl.runs.timefmt import utc_now


def estimate_tokens(request: Request) -> int:
    """An upper-bound-ish prompt size without a tokenizer: ~3 bytes a token, rounded up."""
    size = len(request.system.encode()) + sum(
        len(m.content.encode()) + len(json.dumps([c.to_json() for c in m.tool_calls]))
        for m in request.messages
    )
    size += sum(len(json.dumps(t.parameters)) + len(t.description) for t in request.tools)
    return size // 3 + 16  # a generous margin: the estimate must not undercount


@dataclass
class Meter:
    """Budgeted calls for one run. ``run_cap`` caps the run (its own calls, all time).

    ``environ``, ``sleep`` and ``on_attempt`` go to the ``Caller`` it sends with
    (``journal_retries`` journals each retry as ``llm.retry``).
    """

    config: Config
    run: Run
    role: str
    run_cap: Decimal | None = None
    hint: str | None = None  # for the BudgetRefused raised
    clock: Callable[[], datetime] = utc_now
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why, in the last call
    seconds: float = 0.0  # how long the last call took
    environ: Mapping[str, str] | None = None
    sleep: Callable[[float], None] = time.sleep
    on_attempt: Callable[[Attempt], object] | None = None

    def __post_init__(self) -> None:
        state_dir = self.config.workspace.state_dir
        self.caller = Caller(
            self.config.models,
            lock_dir=state_dir / "locks",
            environ=self.environ,
            sleep=self.sleep,
            on_attempt=self.on_attempt,
        )
        self.ledger = Ledger(state_dir, self.clock)
        self.reservations = Reservations(self.ledger, self.config.settings.budgets, self.clock)
        self._trees: tuple[Tree, ...] | None = None

    def trees(self) -> tuple[Tree, ...]:
        """The cap of the pipeline this run is a step of, if it has one (found once)."""
        if self._trees is None:
            self._trees = ()
            parent_id = self.run.load().parent_id
            if parent_id is not None:
                self._trees = _pipeline_cap(self.config, parent_id)
        return self._trees

    def estimate(self, request: Request, name: str, prompt_tokens: int | None = None) -> Decimal:
        """The most a call of ``request`` to model ``name`` can cost."""
        model = self.config.models[name]
        tokens = estimate_tokens(request) if prompt_tokens is None else prompt_tokens
        return upper_bound(tokens, min(request.max_tokens, model.max_tokens), model.price)

    def hold(self, amount: Decimal, name: str) -> tuple[Hold | None, Decision]:
        """Reserve ``amount`` for a call of model ``name`` against every cap of this run:
        the day, role, model, the run's own cap and its pipeline's (also the metering
        proxy's, for a CLI backend's calls)."""
        return self.reservations.reserve(
            amount,
            role=self.role,
            model=name,
            run_id=self.run.id,
            run_ids={self.run.id} if self.run_cap is not None else None,
            run_cap=self.run_cap,
            trees=self.trees(),
        )

    def call(
        self,
        request: Request,
        chain: Sequence[str],
        *,
        on_event: OnEvent | None = None,
        stream: bool = True,
        **extra: Any,
    ) -> tuple[Outcome, Entry]:
        """The metered call: ``chain`` answers ``request`` within every cap, or
        ``BudgetRefused`` is raised before anything is sent; the answer and its entry."""
        return self.complete(self.caller, request, chain, on_event=on_event, stream=stream, **extra)

    def complete(
        self,
        caller: Caller,
        request: Request,
        chain: Sequence[str],
        *,
        on_event: OnEvent | None = None,
        stream: bool = True,
        **extra: Any,
    ) -> tuple[Outcome, Entry]:
        """``call`` through another ``caller`` (one with its own provider factory)."""
        prompt_tokens = estimate_tokens(request)
        names = list(chain)
        current: list[Hold] = []
        self.skipped = {}

        def reserve(name: str) -> Callable[[], None] | None:
            estimate = self.estimate(request, name, prompt_tokens)
            waiting = fallback.refusal(self.config, names, name, estimate, self.clock())
            if waiting is not None:  # the day's paid fallbacks are spent: wait, do not pay
                self.run.journal.append("llm.fallback_refused", durable=True, reason=waiting)
                raise TransientError(waiting)
            hold, decision = self.hold(estimate, name)
            if hold is None:
                last = name == names[-1]
                if (decision.limit or "").startswith("model:") and not last:
                    self.skipped[name] = f"budget: {decision.reason}"
                    return None  # this model's own cap is spent: the next one may answer
                raise BudgetRefused(decision, hint=self.hint)
            current.append(hold)

            def release() -> None:
                current.remove(hold)
                self.reservations.release(hold)

            return release

        started = time.monotonic()
        try:
            outcome = caller.complete(
                request, names, on_event=on_event, stream=stream, reserve=reserve
            )
            self.seconds = time.monotonic() - started
            hold = current.pop() if current else None
            entry = self.settle(outcome, hold, **extra)
            if fallback.paid_fallback(self.config, names, outcome.model):
                fallback.mark(
                    self.config.workspace.state_dir,
                    self.role,
                    names[0],
                    outcome.model,
                    self.clock(),
                )
                self.run.journal.append(
                    "llm.fallback",
                    durable=True,
                    role=self.role,
                    first=names[0],
                    to=outcome.model,
                    cost_usd=str(entry.cost),
                )
            return outcome, entry
        finally:
            for left in current:  # interrupted (Ctrl-C): nothing stays held
                self.reservations.release(left)

    def settle(self, outcome: Outcome, hold: Hold | None, **extra: Any) -> Entry:
        """Price a finished call into the ledger (dropping its hold) and journal it."""
        response = outcome.response
        entry = self.reservations.settle(
            hold,
            run=self.run.load(),
            model_name=outcome.model,
            model=self.config.models[outcome.model],
            usage=response.usage,
            model_id=response.model,
            request_id=response.request_id,
        )
        self.run.journal.append(
            "llm.call",
            durable=True,
            model=outcome.model,
            model_id=response.model,
            request_id=response.request_id,
            stop_reason=response.stop_reason,
            usage=response.usage.to_json(),
            cost_usd=str(entry.cost),
            tool_calls=len(response.tool_calls),
            seconds=round(self.seconds, 3),
            **extra,
        )
        return entry


def _pipeline_cap(config: Config, parent_id: str) -> tuple[Tree, ...]:
    """A pipeline parent's ``budget_usd`` over the pipeline and every run below it.

    Its steps run one after another, so the runs of the tree are known when a step
    starts; a pipeline's cap also reaches its agents as their run cap, this holds
    it should anything run beside them.
    """
    state_dir = config.workspace.state_dir
    try:
        parent = RunStore(state_dir).get(parent_id).load()
        if parent.kind != "pipeline" or parent.pipeline is None:
            return ()
        cap = config.pipeline(parent.pipeline).budget_usd
    except AgentctlError:  # a parent gone or a pipeline since removed: its run cap holds
        return ()
    if cap is None:
        return ()
    return (
        Tree(
            f"pipeline:{parent.pipeline}",
            f"budget of pipeline {parent.pipeline}",
            frozenset(descendants(state_dir, parent_id)),
            cap,
        ),
    )


def journal_retries(
    run: Run, redact: Callable[[str], str] = lambda text: text
) -> Callable[[Attempt], object]:
    """An ``on_attempt`` that journals each retry of a call (``llm.retry``) in ``run``."""
    return lambda a: run.journal.append(
        "llm.retry", model=a.model, attempt=a.number, error=redact(a.error), wait=a.wait
    )
