"""Retries, waits, fallbacks and slots in ``agentctl.llm.call``, with scripted providers.

These check the policy alone (which error is retried, how long we wait, when the
next model is tried); the wire-level fault tests run the real SDKs against
agentctl.testing's servers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentctl.config.schema import Model, Price
from agentctl.errors import (
    AuthError,
    BadRequestError,
    MissingKeyError,
    QuotaError,
    RateLimitedError,
    StateError,
    TransientError,
)
from agentctl.llm.call import Caller, backoff
from agentctl.llm.types import (
    Message,
    OnEvent,
    Request,
    Response,
    Restart,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)

REQUEST = Request(messages=(Message("user", "hi"),))


def model(retries: int = 2, concurrency: int | None = None) -> Model:
    return Model(
        provider="openai",
        name="m",
        price=Price(0, 0),
        base_url="http://127.0.0.1:9",
        max_retries=retries,
        max_concurrency=concurrency,
    )


def answer(text: str = "ok") -> Response:
    return Response(text, (), "end_turn", Usage(1, 1), "m")


Step = Exception | Response | Callable[[OnEvent | None], Response]


class Scripted:
    """A provider that plays a list of outcomes: an exception to raise or a response."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.calls = 0

    def complete(
        self, request: Request, *, on_event: OnEvent | None = None, stream: bool = True
    ) -> Response:
        step = self.steps[self.calls]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        if isinstance(step, Response):
            return step
        return step(on_event)


def caller(
    providers: dict[str, Scripted], tmp_path: Path, **models: Model
) -> tuple[Caller, list[float]]:
    waits: list[float] = []
    return (
        Caller(
            models or dict.fromkeys(providers, model()),
            lock_dir=tmp_path,
            sleep=waits.append,
            factory=lambda name, _m: providers[name],
        ),
        waits,
    )


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    provider = Scripted([TransientError("500"), TransientError("529"), answer()])
    call, waits = caller({"a": provider}, tmp_path)
    outcome = call.complete(REQUEST, ["a"])
    assert outcome.response.text == "ok" and outcome.model == "a"
    assert provider.calls == 3
    assert [a.number for a in outcome.attempts] == [1, 2]
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    provider = Scripted([RateLimitedError("429", retry_after=7.5), answer()])
    call, waits = caller({"a": provider}, tmp_path)
    call.complete(REQUEST, ["a"])
    assert waits == [7.5]


def test_a_wait_longer_than_allowed_is_not_slept(tmp_path: Path) -> None:
    provider = Scripted([RateLimitedError("429", retry_after=3600), answer()])
    call, waits = caller({"a": provider}, tmp_path)
    with pytest.raises(RateLimitedError) as err:
        call.complete(REQUEST, ["a"])
    assert waits == [] and "asked to wait 3600 s" in str(err.value)


@pytest.mark.parametrize(
    "error", [QuotaError("402"), BadRequestError("400")], ids=["quota", "bad-request"]
)
def test_permanent_errors_are_neither_retried_nor_fallen_back(
    tmp_path: Path, error: Exception
) -> None:
    first, second = Scripted([error]), Scripted([answer()])
    call, waits = caller({"a": first, "b": second}, tmp_path)
    with pytest.raises(type(error)):
        call.complete(REQUEST, ["a", "b"])
    assert first.calls == 1 and second.calls == 0 and waits == []


def test_fallback_after_retries_are_spent(tmp_path: Path) -> None:
    first = Scripted([TransientError("500")] * 3)
    second = Scripted([answer("from b")])
    call, _ = caller({"a": first, "b": second}, tmp_path)
    events: list[StreamEvent] = []
    outcome = call.complete(REQUEST, ["a", "b"], on_event=events.append)
    assert outcome.model == "b" and outcome.response.text == "from b"
    assert first.calls == 3
    assert outcome.attempts[-1].model == "a" and outcome.attempts[-1].wait is None
    assert isinstance(events[-1], Restart) and "falling back from a" in events[-1].reason


@pytest.mark.parametrize(
    "error", [AuthError("401"), MissingKeyError("no key")], ids=["auth", "missing-key"]
)
def test_fallback_on_a_refused_or_missing_key(tmp_path: Path, error: Exception) -> None:
    first, second = Scripted([error]), Scripted([answer()])
    call, _ = caller({"a": first, "b": second}, tmp_path)
    assert call.complete(REQUEST, ["a", "b"]).model == "b"
    assert first.calls == 1


def test_the_last_failure_is_raised_naming_the_chain(tmp_path: Path) -> None:
    call, _ = caller(
        {"a": Scripted([AuthError("401")]), "b": Scripted([TransientError("down")] * 3)},
        tmp_path,
    )
    with pytest.raises(TransientError) as err:
        call.complete(REQUEST, ["a", "b"])
    assert "tried a, b" in str(err.value)


def test_a_stream_that_already_sent_a_tool_call_is_not_retried(tmp_path: Path) -> None:
    def half_tool(on_event: OnEvent | None) -> Response:
        assert on_event is not None
        on_event(ToolCallDelta(0, "call_1", "bash", '{"cmd": "rm'))
        raise TransientError("connection reset mid-stream")

    provider = Scripted([half_tool, answer()])
    call, waits = caller({"a": provider}, tmp_path)
    with pytest.raises(TransientError):
        call.complete(REQUEST, ["a"], on_event=lambda e: None)
    assert provider.calls == 1 and waits == []


def test_a_text_stream_is_retried_and_the_consumer_told_to_restart(tmp_path: Path) -> None:
    def half_text(on_event: OnEvent | None) -> Response:
        assert on_event is not None
        on_event(TextDelta("Hel"))
        raise TransientError("stalled")

    provider = Scripted([half_text, answer("Hello")])
    call, _ = caller({"a": provider}, tmp_path)
    events: list[StreamEvent] = []
    call.complete(REQUEST, ["a"], on_event=events.append)
    assert [type(e).__name__ for e in events] == ["TextDelta", "Restart"]


def test_backoff_schedule_is_capped() -> None:
    assert all(6.0 <= backoff(n) <= 8.0 for n in range(5, 10))


def test_slots_bound_concurrency_per_model(tmp_path: Path) -> None:
    from agentctl.llm.slots import slot

    with slot(tmp_path, "coder", 2) as one, slot(tmp_path, "coder", 2) as two:
        assert {one, two} == {0, 1}
        naps: list[float] = []
        with (
            pytest.raises(StateError, match="waited 0 s for one of 2 slots"),
            slot(tmp_path, "coder", 2, wait=0, sleep=naps.append),
        ):
            pass
    with slot(tmp_path, "coder", 2) as again:
        assert again in (0, 1)  # released on exit
    with slot(tmp_path, "unlimited", None) as none:
        assert none is None
