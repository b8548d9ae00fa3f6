"""Prompt caching pays: a long tool loop through the anthropic provider, cached vs not.

The scripted server simulates Anthropic's prefix cache at the client's
``cache_control`` breakpoints, so the saving measured here is what the
provider's breakpoint placement earns, priced by agentctl's own pricing.
"""

from __future__ import annotations

from decimal import Decimal

from agentctl.config.schema import Model, Price
from agentctl.cost.pricing import cost_of
from agentctl.llm import make_provider
from agentctl.llm.types import Message, Request, ToolSpec, Usage
from agentctl.testing.llm_server import LLMServer, Turn

PRICE = Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3)
SYSTEM = "You are the dev agent. " + "Follow the house style carefully. " * 60
TOOLS = tuple(
    ToolSpec(
        name,
        f"{name} a file in the workspace",
        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    )
    for name in ("read", "write", "grep")
)
TURNS = 30


def loop_input_cost(cache: bool) -> tuple[Decimal, list[Usage]]:
    """Input-side cost of a 30-turn tool loop whose history grows every turn."""
    with LLMServer() as server:
        server.script(
            "claude-loop", *[Turn.tool_call("read", {"path": f"f{i}.py"}) for i in range(TURNS)]
        )
        model = Model(
            provider="anthropic",
            name="claude-loop",
            price=PRICE,
            base_url=server.anthropic_url,
            api_key_env="K",
        )
        provider = make_provider("loop", model, {"K": "k"})
        history: list[Message] = [Message("user", "Fix the failing test in src/.")]
        usages = []
        for i in range(TURNS):
            request = Request(messages=tuple(history), system=SYSTEM, tools=TOOLS, cache=cache)
            response = provider.complete(request, on_event=lambda e: None)
            usages.append(response.usage)
            (call,) = response.tool_calls
            history += [
                response.message(),
                Message("tool", f"contents of f{i}.py:\n" + "x = 1\n" * 40, tool_call_id=call.id),
            ]
        server.assert_complete()
    total = sum(
        (
            cost_of(Usage(u.input_tokens, 0, u.cache_write_tokens, u.cache_read_tokens), PRICE)
            for u in usages
        ),
        Decimal(0),
    )
    return total, usages


def test_cache_breakpoints_cut_the_input_cost_of_a_long_loop_below_40_percent() -> None:
    cached, usages = loop_input_cost(cache=True)
    uncached, plain = loop_input_cost(cache=False)
    assert all(u.cache_read_tokens == 0 and u.cache_write_tokens == 0 for u in plain)
    assert usages[0].cache_read_tokens == 0 and usages[0].cache_write_tokens > 0
    assert all(u.cache_read_tokens > 0 for u in usages[1:])  # every later turn reads the prefix
    # Same prompt either way: only how it is billed differs.
    assert [u.prompt_tokens for u in usages] == [u.prompt_tokens for u in plain]
    assert cached <= uncached * Decimal("0.40"), (cached, uncached)
