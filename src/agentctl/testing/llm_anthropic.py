"""Anthropic Messages wire shapes (WIRE.md section 1), checked against recorded streams.

Every streamed event carries an ``event:`` line (SDK 2.x drops events without
one); a ``ping`` follows the first block start, as the real API sends it.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from agentctl.testing.llm_script import ErrorSpec, Turn
from agentctl.testing.llm_wire import Context, Event, call_ids, default_message, pieces, sse

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def signature(thinking: str) -> str:
    """An opaque, deterministic stand-in for a thinking block's signature."""
    return base64.b64encode(b"sig:" + hashlib.sha256(thinking.encode()).digest()).decode()


class AnthropicRenderer:
    request_id_header = "request-id"

    def body(self, turn: Turn, ctx: Context) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if turn.reasoning:
            content.append(
                {
                    "type": "thinking",
                    "thinking": turn.reasoning,
                    "signature": signature(turn.reasoning),
                }
            )
        if turn.content:
            content.append({"type": "text", "text": turn.content})
        for call, call_id in zip(turn.calls, call_ids(turn.calls, ctx.ids, "toolu"), strict=True):
            # Non-streaming tool_use needs an object: malformed/partial arguments become {}.
            content.append(_tool_use(call_id, call.name, call.input_object()))
        stop_reason, stop_sequence = _stop(turn, ctx)
        return {
            **_message_head(ctx),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": None,
            "usage": _usage(ctx, ctx.counts.output_tokens),
        }

    def events(self, turn: Turn, ctx: Context) -> list[Event]:
        start = {
            **_message_head(ctx),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
            "usage": _usage(ctx, min(1, ctx.counts.output_tokens)),
        }
        out = [Event(sse("message_start", {"type": "message_start", "message": start}))]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if turn.reasoning:
            deltas = [
                {"type": "thinking_delta", "thinking": part}
                for part in pieces(turn.reasoning, ctx.min_pieces)
            ]
            deltas.append({"type": "signature_delta", "signature": signature(turn.reasoning)})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        if turn.content or turn.kind != "reply":
            deltas = [
                {"type": "text_delta", "text": p} for p in pieces(turn.content, ctx.min_pieces)
            ]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for call, call_id in zip(turn.calls, call_ids(turn.calls, ctx.ids, "toolu"), strict=True):
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in pieces(call.arguments, ctx.min_pieces)
            ]
            blocks.append((_tool_use(call_id, call.name, {}), deltas))
        for index, (block, deltas) in enumerate(blocks):
            out.append(
                Event(
                    sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": block},
                    )
                )
            )
            if index == 0:
                out.append(Event(sse("ping", {"type": "ping"})))
            for delta in deltas:
                payload = {"type": "content_block_delta", "index": index, "delta": delta}
                out.append(Event(sse("content_block_delta", payload), delta=True))
            out.append(
                Event(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            )
        if not blocks:
            out.append(Event(sse("ping", {"type": "ping"})))
        stop_reason, stop_sequence = _stop(turn, ctx)
        counts = ctx.counts
        final = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason,
                "stop_sequence": stop_sequence,
                "stop_details": None,
            },
            "usage": {
                "input_tokens": counts.input_tokens,
                "cache_creation_input_tokens": counts.cache_write_tokens,
                "cache_read_input_tokens": counts.cache_read_tokens,
                "output_tokens": counts.output_tokens,
            },
        }
        out.append(Event(sse("message_delta", final)))
        out.append(Event(sse("message_stop", {"type": "message_stop"})))
        return out

    def error(self, spec: ErrorSpec, request_id: str) -> tuple[int, dict[str, Any]]:
        status = 402 if spec.quota else spec.status
        error_type = spec.type or ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        error: dict[str, Any] = {
            "type": error_type,
            "message": spec.message or default_message(status),
        }
        if spec.code:
            error["details"] = {"error_code": spec.code}
        return status, {"type": "error", "error": error, "request_id": request_id}

    def stream_error(self, spec: ErrorSpec, ctx: Context, sequence: int) -> list[Event]:
        _, body = self.error(spec, ctx.request_id)
        return [Event(sse("error", body))]


def _message_head(ctx: Context) -> dict[str, Any]:
    return {"id": f"msg_{ctx.serial}", "type": "message", "role": "assistant", "model": ctx.model}


def _tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": arguments,
        "caller": {"type": "direct"},
    }


def _stop(turn: Turn, ctx: Context) -> tuple[str, str | None]:
    if turn.calls and not turn.truncated:
        return "tool_use", None
    if turn.stop == "stop_sequence":
        sequences = ctx.body.get("stop_sequences") or []
        return "stop_sequence", str(sequences[0]) if sequences else None
    return turn.stop, None


def _usage(ctx: Context, output_tokens: int) -> dict[str, Any]:
    counts = ctx.counts
    hour = counts.cache_write_tokens if counts.cache_ttl == "1h" else 0
    return {
        "input_tokens": counts.input_tokens,
        "cache_creation_input_tokens": counts.cache_write_tokens,
        "cache_read_input_tokens": counts.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": counts.cache_write_tokens - hour,
            "ephemeral_1h_input_tokens": hour,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
