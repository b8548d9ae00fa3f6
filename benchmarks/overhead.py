"""What agentctl's provider layer adds to a model call, beside the raw SDK.

    python benchmarks/overhead.py [--calls 200]

Against one local scripted server, in one run: N sequential calls with the raw
``openai`` / ``anthropic`` SDK, then N through agentctl's provider (request
building, response parsing, tool-call checking), non-streaming and streaming.
Prints ms per call for both and the difference. Target: agentctl adds <= 0.5 ms
per call. Figures, not a pass/fail test: read the medians of a few runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from agentctl.config.schema import Model, Price
from agentctl.llm import make_provider
from agentctl.llm.types import Message, Request
from agentctl.testing.llm_server import LLMServer, Turn

PROMPT = "Say ok."


def per_call_ms(server: LLMServer, model: str, calls: int, call: Callable[[], object]) -> float:
    server.script(model, *[Turn.text("ok")] * calls)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def openai_pair(
    server: LLMServer, stream: bool
) -> tuple[Callable[[], object], Callable[[], object]]:
    import openai

    raw_client = openai.OpenAI(api_key="k", base_url=server.openai_url, max_retries=0)
    model = Model(
        provider="openai",
        name="bench-chat",
        price=Price(0, 0),
        base_url=server.openai_url,
        api_key_env="K",
    )
    provider = make_provider("bench", model, {"K": "k"})
    request = Request(messages=(Message("user", PROMPT),), max_tokens=16)
    messages = [{"role": "user", "content": PROMPT}]

    def raw() -> object:
        if not stream:
            return raw_client.chat.completions.create(
                model="bench-chat",
                messages=messages,
                max_tokens=16,  # type: ignore[arg-type]
            )
        chunks = raw_client.chat.completions.create(
            model="bench-chat",
            messages=messages,
            max_tokens=16,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    return raw, lambda: provider.complete(request, stream=stream)


def anthropic_pair(
    server: LLMServer, stream: bool
) -> tuple[Callable[[], object], Callable[[], object]]:
    import anthropic

    raw_client = anthropic.Anthropic(api_key="k", base_url=server.anthropic_url, max_retries=0)
    model = Model(
        provider="anthropic",
        name="bench-claude",
        price=Price(0, 0),
        base_url=server.anthropic_url,
        api_key_env="K",
    )
    provider = make_provider("bench", model, {"K": "k"})
    request = Request(messages=(Message("user", PROMPT),), max_tokens=16, cache=False)
    messages = [{"role": "user", "content": PROMPT}]

    def raw() -> object:
        if not stream:
            return raw_client.messages.create(
                model="bench-claude", max_tokens=16, messages=messages
            )  # type: ignore[arg-type]
        with raw_client.messages.create(
            model="bench-claude",
            max_tokens=16,
            messages=messages,
            stream=True,  # type: ignore[arg-type]
        ) as events:
            return [e for e in events]

    return raw, lambda: provider.complete(request, stream=stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    calls = parser.parse_args().calls
    print(f"provider overhead, median ms per call over {calls} sequential calls (one local server)")
    with LLMServer() as server:
        for label, pair, model in (
            ("openai chat", openai_pair, "bench-chat"),
            ("anthropic messages", anthropic_pair, "bench-claude"),
        ):
            for stream in (False, True):
                raw, ours = pair(server, stream)
                per_call_ms(server, model, 20, raw)  # warm: connections, imports, caches
                per_call_ms(server, model, 20, ours)
                raw_ms = per_call_ms(server, model, calls, raw)
                our_ms = per_call_ms(server, model, calls, ours)
                mode = "stream" if stream else "whole "
                added = our_ms - raw_ms
                verdict = "ok" if added <= 0.5 else "OVER"
                print(
                    f"  {label:<19} {mode}  raw SDK {raw_ms:6.2f} ms   agentctl {our_ms:6.2f} ms"
                    f"   added {added:+5.2f} ms (x{our_ms / raw_ms:4.2f})  target <= 0.5: {verdict}"
                )
        server.assert_complete()


if __name__ == "__main__":
    main()
