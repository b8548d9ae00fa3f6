"""OpenAI Chat Completions wire shapes (WIRE.md section 2), checked against recorded streams.

Streams are ``data:``-only chunks; tool calls stream by ``index`` (the first delta
carries id/type/name and ``arguments: ""``); the usage chunk (``choices: []``) is
sent only when ``stream_options.include_usage`` is true.
"""

from __future__ import annotations

from typing import Any

from agentctl.testing.llm_script import ErrorSpec, Turn
from agentctl.testing.llm_wire import Context, Event, call_ids, default_message, pieces, sse

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}
FINGERPRINT = "fp_llm_server"

# status -> (type, code), as api.openai.com sends them
ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def openai_error(spec: ErrorSpec) -> tuple[int, dict[str, Any]]:
    """``{"error": {message, type, param, code}}``, shared by Chat and Responses."""
    default_code: str | None
    if spec.quota:
        status, default_type, default_code = 429, "insufficient_quota", "insufficient_quota"
        message = spec.message or (
            "You exceeded your current quota, please check your plan and billing details."
        )
    else:
        status = spec.status
        fallback = (
            ("server_error", "server_error") if status >= 500 else ("invalid_request_error", None)
        )
        default_type, default_code = ERRORS.get(status, fallback)
        message = spec.message or default_message(status)
    error = {
        "message": message,
        "type": spec.type or default_type,
        "param": None,
        "code": spec.code or default_code,
    }
    return status, {"error": error}


def finish_reason(turn: Turn) -> str:
    if turn.calls and not turn.truncated:
        return "tool_calls"
    return FINISH[turn.stop]


class ChatRenderer:
    request_id_header = "x-request-id"

    def body(self, turn: Turn, ctx: Context) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": turn.content if turn.content or not turn.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        if turn.calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c, call_id in zip(
                    turn.calls, call_ids(turn.calls, ctx.ids, "call"), strict=True
                )
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(turn),
        }
        return {
            **_head(ctx, "chat.completion"),
            "choices": [choice],
            "usage": _usage(ctx),
        }

    def events(self, turn: Turn, ctx: Context) -> list[Event]:
        head = _head(ctx, "chat.completion.chunk")
        out: list[Event] = []

        def chunk(delta: dict[str, Any], finish: str | None = None, is_delta: bool = False) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if ctx.sse_comments:
                out.append(Event(b": keep-alive\n\n"))
            out.append(Event(sse(None, {**head, "choices": [choice], "usage": None}), is_delta))

        has_text = bool(turn.content) or turn.kind != "reply"
        content = "" if has_text or not turn.calls else None
        chunk({"role": "assistant", "content": content, "refusal": None})
        for part in pieces(turn.reasoning, ctx.min_pieces) if turn.reasoning else []:
            chunk({"reasoning_content": part}, is_delta=True)
        if has_text:
            for part in pieces(turn.content, ctx.min_pieces):
                chunk({"content": part}, is_delta=True)
        ids = call_ids(turn.calls, ctx.ids, "call")
        for index, (call, call_id) in enumerate(zip(turn.calls, ids, strict=True)):
            opening = {"index": index, "id": call_id, "type": "function"}
            opening["function"] = {"name": call.name, "arguments": ""}
            chunk({"tool_calls": [opening]})
            for part in pieces(call.arguments, ctx.min_pieces):
                fragment = {"index": index, "function": {"arguments": part}}
                chunk({"tool_calls": [fragment]}, is_delta=True)
        chunk({}, finish_reason(turn))
        options = ctx.body.get("stream_options") or {}
        if options.get("include_usage") is True:
            out.append(Event(sse(None, {**head, "choices": [], "usage": _usage(ctx)})))
        if ctx.chat_done:
            out.append(Event(b"data: [DONE]\n\n"))
        return out

    def error(self, spec: ErrorSpec, request_id: str) -> tuple[int, dict[str, Any]]:
        return openai_error(spec)

    def stream_error(self, spec: ErrorSpec, ctx: Context, sequence: int) -> list[Event]:
        _, body = openai_error(spec)
        return [Event(sse(None, body))]


def _head(ctx: Context, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{ctx.serial}",
        "object": kind,
        "created": ctx.created,
        "model": ctx.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _usage(ctx: Context) -> dict[str, Any]:
    counts = ctx.counts
    return {
        "prompt_tokens": counts.prompt_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.prompt_tokens + counts.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": counts.cache_read_tokens,
            "cache_write_tokens": counts.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": counts.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
