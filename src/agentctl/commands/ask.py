"""One prompt, one answer, priced: the core of ``agentctl ask`` and ``models test``.

Even a one-shot call is a run (kind ``ask``): its input, the call with usage and
cost, and the answer land in a run directory, and the cost in the ledger, so
``agentctl cost`` and ``runs show`` see it like any agent's call. Each model tried
reserves the most its call could cost before anything is sent (``Meter``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from agentctl.config import Config
from agentctl.cost.metered import Meter, estimate_tokens, journal_retries
from agentctl.errors import AgentctlError, MissingKeyError, QuotaError
from agentctl.llm.call import Attempt
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
    except AgentctlError as exc:  # a missing key, a refused call, a budget: failed, with why
        run.journal.append("llm.error", durable=True, error=str(exc))
        run.transition("failed", reason=str(exc))
        raise
    except Exception as exc:  # never left "running" to be found stale later
        run.transition("failed", reason=f"{type(exc).__name__}: {exc}")
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
    meter = Meter(
        config,
        run,
        role,
        hint="raise [budgets] in agentctl.toml",
        clock=clock,
        environ=environ,
        sleep=sleep,
        on_attempt=journal_retries(run),
    )
    prompt_tokens = estimate_tokens(request)
    estimate = max(meter.estimate(request, n, prompt_tokens) for n in chain)
    with contextlib.suppress(MissingKeyError):
        meter.caller.provider(chain[0])  # import the SDK now, so the latency measured is the call's
    run.journal.append("llm.request", models=chain, estimate_usd=str(estimate))
    outcome, entry = meter.call(request, chain, on_event=on_event)
    return Answer(
        run.id, outcome.model, outcome.response, entry.cost, meter.seconds, outcome.attempts
    )


__all__ = ["PROBE_PROMPT", "Answer", "ask", "estimate_tokens"]
