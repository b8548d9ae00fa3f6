"""``agentctl models``: the models configured, their endpoints, prices and keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentctl.cli.context import echo, new_group, print_json, print_table, state

app = new_group("Models: endpoints, prices (USD per million tokens) and API keys.")


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the models with provider, API, endpoint, price and whether the key is set."""
    from agentctl import keystore
    from agentctl.config.convert import to_data

    config = state(ctx).config
    rows: list[dict[str, Any]] = []
    for name, model in config.models.items():
        env = model.key_env
        rows.append(
            {
                "name": name,
                "provider": model.provider,
                "api": model.resolved_api,
                "model": model.name,
                "base_url": model.base_url,
                "key_env": env,
                "key_set": bool(keystore.get(env)) if env else None,
                "max_concurrency": model.max_concurrency,
                "price": {
                    "input": to_data(model.price.input),
                    "output": to_data(model.price.output),
                    "cache_write": to_data(model.price.cache_write),
                    "cache_read": to_data(model.price.cache_read),
                },
                "source": config.origin("models", name),
            }
        )
    if as_json:
        print_json(rows)
        return

    def key(row: dict[str, Any]) -> str:
        if row["key_env"] is None:
            return "(none needed)"
        return f"{row['key_env']} {'set' if row['key_set'] else 'MISSING'}"

    def api(row: dict[str, Any]) -> str:
        return row["provider"] if row["api"] == "messages" else f"{row['provider']} {row['api']}"

    print_table(
        "models (USD per million tokens)",
        ("name", "api", "model", "in", "out", "cache w/r", "key"),
        [
            (
                r["name"],
                api(r),
                r["model"],
                _price(r["price"]["input"]),
                _price(r["price"]["output"]),
                f"{_price(r['price']['cache_write'])}/{_price(r['price']['cache_read'])}",
                key(r),
            )
            for r in rows
        ],
    )


@app.command("test")
def test_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The configured model to try.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Send a tiny request; report latency, usage and cost, or the exact error."""
    from agentctl.commands.ask import PROBE_PROMPT, ask

    config = state(ctx).config
    answer = ask(config, PROBE_PROMPT, model=name, role="models-test", max_tokens=16)
    result = answer.to_json()
    if as_json:
        print_json(result)
        return
    usage = answer.response.usage
    echo(
        f"ok: {name} ({answer.response.model}) answered {answer.response.text.strip()[:40]!r} "
        f"in {answer.seconds * 1000:.0f} ms; {usage.prompt_tokens} tokens in, "
        f"{usage.output_tokens} out; ${answer.cost:f}"
        + (f"; request {answer.response.request_id}" if answer.response.request_id else "")
    )
