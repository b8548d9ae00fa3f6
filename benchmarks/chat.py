"""Token use of a long chat: bounded by the window, repeated prefix at cache-read price.

    python benchmarks/chat.py [--turns 50]

A scripted 50-turn session with the main role on an Anthropic-shaped model (the
scripted server simulates prompt caching): prints, per 10 turns, the prompt size
sent, and at the end the tokens billed as input, cache write and cache read, the
cost, and what the same turns would cost with no caching.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

from agentctl.chat.session import KEEP, ChatSession
from agentctl.commands.init import init_workspace
from agentctl.config import load_config
from agentctl.cost.pricing import cost_of
from agentctl.llm.types import Usage
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.workspace import find_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    turns = parser.parse_args().turns
    with tempfile.TemporaryDirectory() as scratch, LLMServer() as server:
        root = Path(scratch)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        init_workspace(root, test_command="true", base_branch="main")
        (root / "agentctl.toml").write_text(
            f'[models.opus]\nprovider = "anthropic"\nname = "bench-main"\n'
            f'base_url = "{server.anthropic_url}"\napi_key_env = ""\n'
            "price = { input = 4.0, output = 20.0, cache_write = 5.0, cache_read = 0.2 }\n"
        )
        server.script(
            "bench-main",
            *[
                Turn.text(f"Answer {i}: " + "here is a considered reply. " * 20)
                for i in range(turns)
            ],
        )
        config = load_config(find_workspace(root))
        session = ChatSession.open(config, model="opus")
        price = config.models["opus"].price
        billed = Usage()
        print(f"chat, {turns} scripted turns, window {KEEP} messages (Anthropic-shaped, cached)")
        for i in range(turns):
            session.send(f"Question {i}: " + "some context about the project. " * 10)
            usage = Usage.from_json(server.requests[-1].usage or {})
            billed = billed + usage
            if (i + 1) % 10 == 0:
                print(
                    f"  turn {i + 1:3}: prompt {usage.prompt_tokens:6,} tokens "
                    f"({usage.cache_read_tokens:,} read from cache)"
                )
        cost = cost_of(billed, price)
        uncached = cost_of(Usage(billed.prompt_tokens, billed.output_tokens), price)
        print(
            f"  billed: {billed.input_tokens:,} input, {billed.cache_write_tokens:,} cache "
            f"write, {billed.cache_read_tokens:,} cache read, {billed.output_tokens:,} output"
        )
        print(
            f"  cost ${cost:f}; without caching ${uncached:f} "
            f"({(cost / uncached * 100 if uncached else Decimal(0)):.0f}%)"
        )
        session.close()
        server.assert_complete()


if __name__ == "__main__":
    main()
