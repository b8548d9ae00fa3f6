"""One prompt, one answer, priced: the core of ``agentctl ask`` and ``models test``.

Even a one-shot call is a run (kind ``ask``): its input, the call with usage and
cost, and the answer land in a run directory, and the cost in the ledger, so
``agentctl cost`` and ``runs show`` see it like any agent's call. The budget is
checked before anything is sent, against the most a call to any model of the
chain could cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentctl.config import Config
from agentctl.cost.budget import BudgetGuard
from agentctl.cost.ledger import Entry, Ledger
from agentctl.cost.pricing import upper_bound
from agentctl.errors import BudgetExceeded, MissingKeyError, ProviderError, QuotaError
from agentctl.llm.call import Attempt, Caller, Outcome
from agentctl.llm.types import Message, OnEvent, Request, Response
from agentctl.runs import Run, RunStore, utc_now

PROBE_PROMPT = "Reply with the single word: ok"


@dataclass(frozen=True, slots=True)
class Answer:
    run_id: str
    model: str  # the configured name that answered
    response: Response
    cost: Decimal
    seconds: float
    attempts: tuple[Attempt, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "model_id": self.response.model,
            "text": self.response.text,
            "stop_reason": self.response.stop_reason,
            "usage": self.response.usage.to_json(),
            "cost_usd": self.cost,
            "seconds": round(self.seconds, 3),
            "request_id": self.response.request_id,
            "retries": len(self.attempts),
        }


def record_call(config: Config, run: Run, ledger: Ledger, outcome: Outcome, **extra: Any) -> Entry:
    """Price a finished call into the ledger and journal it (usage, cost, request id)."""
    response = outcome.response
    entry = ledger.charge(
        run=run.load(),
        model_name=outcome.model,
        model=config.models[outcome.model],
        usage=response.usage,
        model_id=response.model,
        request_id=response.request_id,
    )
    run.journal.append(
        "llm.call",
        durable=True,
        model=outcome.model,
        model_id=response.model,
        request_id=response.request_id,
        stop_reason=response.stop_reason,
        usage=response.usage.to_json(),
        cost_usd=str(entry.cost),
        **extra,
    )
    return entry


def estimate_tokens(request: Request) -> int:
    """An upper-bound-ish prompt size without a tokenizer: ~4 bytes a token, rounded up."""
    size = len(request.system.encode()) + sum(
        len(m.content.encode()) + len(json.dumps([c.to_json() for c in m.tool_calls]))
        for m in request.messages
    )
    size += sum(len(json.dumps(t.parameters)) + len(t.description) for t in request.tools)
    return size // 3 + 16  # a generous margin: the estimate must not undercount


def ask(
    config: Config,
    prompt: str,
    *,
    model: str | None = None,
    role: str = "main",
    system: str = "",
    max_tokens: int | None = None,
    on_event: OnEvent | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """Send ``prompt`` to ``model`` (or ``role``'s model chain); record run, journal, ledger."""
    chain = [model] if model else list(config.role(role).models)
    for name in chain:
        config.model(name)  # a clear error for an unknown name, before any file is written
    state_dir = config.workspace.state_dir
    run = RunStore(state_dir, clock=clock).create(
        "ask",
        input={"prompt": prompt, "system": system, "models": chain},
        role=role,
        model=chain[0],
        workspace=str(config.workspace.root),
    )
    run.mark_started(os.getpid(), os.getpgid(0))
    try:
        answer = _call(
            config, run, chain, prompt, role, system, max_tokens, on_event, environ, clock, sleep
        )
    except KeyboardInterrupt:
        run.transition("canceled", reason="interrupted")
        raise
    except QuotaError as exc:
        run.journal.append("llm.error", durable=True, error=str(exc), kind="quota")
        run.transition("paused", reason=str(exc))
        raise
    except (ProviderError, BudgetExceeded) as exc:
        run.journal.append("llm.error", durable=True, error=str(exc))
        run.transition("failed", reason=str(exc))
        raise
    run.write_output(answer.to_json() | {"cost_usd": str(answer.cost)})
    run.transition("succeeded")
    return answer


def _call(
    config: Config,
    run: Run,
    chain: list[str],
    prompt: str,
    role: str,
    system: str,
    max_tokens: int | None,
    on_event: OnEvent | None,
    environ: Mapping[str, str] | None,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
) -> Answer:
    request = Request(
        messages=(Message("user", prompt),),
        system=system,
        max_tokens=max_tokens or max(config.models[n].max_tokens for n in chain),
    )
    ledger = Ledger(config.workspace.state_dir, clock)
    prompt_tokens = estimate_tokens(request)
    estimate = max(
        upper_bound(
            prompt_tokens,
            min(request.max_tokens, config.models[n].max_tokens),
            config.models[n].price,
        )
        for n in chain
    )
    decision = BudgetGuard(config.settings.budgets, ledger, clock).check(
        estimate, role=role, model=chain[0]
    )
    if not decision.allowed:
        raise BudgetExceeded(
            f"not sent: {decision.reason}", hint="raise [budgets] in agentctl.toml"
        )
    caller = Caller(
        config.models,
        lock_dir=config.workspace.state_dir / "locks",
        environ=environ,
        sleep=sleep,
        on_attempt=lambda a: run.journal.append(
            "llm.retry", model=a.model, attempt=a.number, error=a.error, wait=a.wait
        ),
    )
    with contextlib.suppress(MissingKeyError):
        caller.provider(chain[0])  # import the SDK now, so the latency measured is the call's
    started = time.monotonic()
    run.journal.append("llm.request", models=chain, estimate_usd=str(estimate))
    outcome = caller.complete(request, chain, on_event=on_event)
    seconds = time.monotonic() - started
    response = outcome.response
    entry = record_call(config, run, ledger, outcome, seconds=round(seconds, 3))
    return Answer(run.id, outcome.model, response, entry.cost, seconds, outcome.attempts)


__all__ = ["PROBE_PROMPT", "Answer", "ask"]
