"""``pipeline run --dry-run``: the resolved steps, their models, and what one run may cost.

The low figure is one pass with one short call per role step (2,000 tokens in,
500 out) on its first model; the high figure is every role step running all its
turns at the output limit of the dearest model of its chain (fallbacks included)
over a 50,000-token prompt, times the loops its ``on_fail`` allows — capped by
each role's and the pipeline's budget.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agentctl.config import Config
from agentctl.cost.pricing import cost_of, upper_bound
from agentctl.llm.types import Usage
from agentctl.pipeline.lookup import find


def dry_run(config: Config, name: str) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
    pipeline = find(config, name)
    loops = 1 + sum(s.on_fail.max for s in pipeline.steps if s.on_fail)
    rows: list[dict[str, Any]] = []
    low = high = Decimal(0)
    for step in pipeline.steps:
        model_name, does = "", f"uses {step.uses}" if step.uses else f"run {step.run}"
        chain: list[str] = []
        if step.role is not None:
            role = config.role(step.role)
            chain = [step.model] if step.model else list(role.models)
            model_name = chain[0]
            does = f"role {step.role}"
            low += cost_of(Usage(2000, 500), config.models[model_name].price)
            # The chain falls back when a model fails: the bound is its dearest model's.
            one = role.max_turns * max(
                upper_bound(50_000, config.models[m].max_tokens, config.models[m].price)
                for m in chain
            )
            if role.budget_usd is not None:
                one = min(one, role.budget_usd)
            high += one * loops
        on_fail = f"goto {step.on_fail.goto} (max {step.on_fail.max})" if step.on_fail else ""
        rows.append(
            {"id": step.id, "does": does, "model": model_name, "models": chain, "on_fail": on_fail}
        )
    if pipeline.budget_usd is not None:
        high = min(high, pipeline.budget_usd)
    return rows, low.quantize(Decimal("0.000001")), high.quantize(Decimal("0.01"))
