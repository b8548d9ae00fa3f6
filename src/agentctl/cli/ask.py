"""``agentctl ask``: one prompt, streamed to the terminal, priced and recorded."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.context import print_json, single, state
from agentctl.visible import visible

if TYPE_CHECKING:
    from agentctl.commands.ask import Answer
    from agentctl.llm.types import OnEvent


@contextmanager
def streamed(as_json: bool) -> Iterator[OnEvent | None]:
    """Where deltas go: rich markdown, live, at a terminal; raw text into a pipe."""
    from agentctl.llm.types import Restart, TextDelta

    if as_json:
        yield None
        return
    if not sys.stdout.isatty():

        def raw(event: object) -> None:
            if isinstance(event, TextDelta):
                sys.stdout.write(visible(event.text))
                sys.stdout.flush()
            elif isinstance(event, Restart):
                sys.stderr.write(visible(f"\n[{event.reason}]\n"))

        yield raw
        sys.stdout.write("\n")
        return
    from rich.live import Live
    from rich.markdown import Markdown
    from rich.text import Text

    parts: list[str] = []
    with Live(Markdown(""), refresh_per_second=12, vertical_overflow="visible") as live:

        def render(event: object) -> None:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Restart):
                parts.clear()
                live.console.print(Text(visible(event.reason), style="dim"))
            else:
                return
            live.update(Markdown(visible("".join(parts))))

        yield render


def footer(answer: Answer) -> str:
    usage = answer.response.usage
    cached = f", {usage.cache_read_tokens} cached" if usage.cache_read_tokens else ""
    retries = f", {len(answer.attempts)} retries" if answer.attempts else ""
    return (
        f"{answer.model} ({answer.response.model}) · {usage.prompt_tokens} in{cached}, "
        f"{usage.output_tokens} out · ${answer.cost:f} · {answer.seconds:.1f}s{retries} · "
        f"run {answer.run_id}"
    )


def ask_command(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads it from stdin.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A configured model (default: the role's).")
    ] = None,
    role: Annotated[str, typer.Option(help="Whose models (and budget) to use.")] = "main",
    system: Annotated[str, typer.Option(help="A system prompt.")] = "",
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Output token limit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Send one prompt to a model and stream the answer; its cost is recorded."""
    from agentctl.commands.ask import ask

    text = sys.stdin.read() if prompt == "-" else prompt
    config = state(ctx).config
    with streamed(as_json) as on_event:
        answer = ask(
            config,
            text,
            model=model,
            role=role,
            system=system,
            max_tokens=max_tokens,
            on_event=on_event,
        )
    if as_json:
        print_json(answer.to_json())
        return
    if answer.response.stop_reason not in ("end_turn", "stop_sequence"):
        sys.stderr.write(f"[stopped: {answer.response.stop_reason}]\n")
    sys.stderr.write(footer(answer) + "\n")


app = single(ask_command)
