"""OpenAI Responses wire shapes (WIRE.md section 2), checked against recorded streams.

Streams are ``event:``+``data:`` with increasing ``sequence_number``s; a truncated or
filtered answer ends with ``response.incomplete`` (as the real API does), not
``response.completed``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from agentctl.testing.llm_chat import openai_error
from agentctl.testing.llm_script import ErrorSpec, Turn
from agentctl.testing.llm_wire import Context, Event, call_ids, pieces, sse

INCOMPLETE = {"max_tokens": "max_output_tokens", "refusal": "content_filter"}


def encrypted_reasoning(thinking: str) -> str:
    """An opaque stand-in for ``encrypted_content`` (deterministic, not decodable)."""
    return "gAAAAA" + base64.urlsafe_b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


class ResponsesRenderer:
    request_id_header = "x-request-id"

    def body(self, turn: Turn, ctx: Context) -> dict[str, Any]:
        items = [done for _, done, _ in self._items(turn, ctx)]
        status, details = _status(turn)
        return _response(ctx, f"resp_{ctx.serial}", status, items, _usage(ctx), details)

    def events(self, turn: Turn, ctx: Context) -> list[Event]:
        response_id = f"resp_{ctx.serial}"
        out: list[Event] = []

        def emit(kind: str, is_delta: bool = False, **fields: Any) -> None:
            payload = {"type": kind, **fields, "sequence_number": len(out)}
            out.append(Event(sse(kind, payload), is_delta))

        opening = _response(ctx, response_id, "in_progress", [], None, None)
        emit("response.created", response=opening)
        emit("response.in_progress", response=opening)
        finished = []
        for index, (added, done, deltas) in enumerate(self._items(turn, ctx)):
            emit("response.output_item.added", item=added, output_index=index)
            item_id = done["id"]
            if done["type"] == "message":
                part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                where = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit("response.content_part.added", part=part, **where)
                for delta in deltas:
                    emit("response.output_text.delta", True, delta=delta, logprobs=[], **where)
                text = done["content"][0]["text"]
                emit("response.output_text.done", text=text, logprobs=[], **where)
                emit("response.content_part.done", part={**part, "text": text}, **where)
            elif done["type"] == "custom_tool_call":
                for delta in deltas:
                    emit(
                        "response.custom_tool_call_input.delta",
                        True,
                        delta=delta,
                        item_id=item_id,
                        output_index=index,
                    )
                emit(
                    "response.custom_tool_call_input.done",
                    input=done["input"],
                    item_id=item_id,
                    output_index=index,
                )
            elif done["type"] == "function_call":
                for delta in deltas:
                    emit(
                        "response.function_call_arguments.delta",
                        True,
                        delta=delta,
                        item_id=item_id,
                        output_index=index,
                    )
                emit(
                    "response.function_call_arguments.done",
                    arguments=done["arguments"],
                    item_id=item_id,
                    output_index=index,
                )
            emit("response.output_item.done", item=done, output_index=index)
            finished.append(done)
        status, details = _status(turn)
        final = _response(ctx, response_id, status, finished, _usage(ctx), details)
        emit(
            "response.completed" if status == "completed" else "response.incomplete", response=final
        )
        return out

    def error(self, spec: ErrorSpec, request_id: str) -> tuple[int, dict[str, Any]]:
        return openai_error(spec)

    def stream_error(self, spec: ErrorSpec, ctx: Context, sequence: int) -> list[Event]:
        _, body = openai_error(spec)
        error = body["error"]
        event = {
            "type": "error",
            "code": error["code"] or error["type"],
            "message": error["message"],
            "param": None,
            "sequence_number": sequence,
        }
        code = "rate_limit_exceeded" if spec.status == 429 else "server_error"
        failed = _response(ctx, f"resp_{ctx.serial}", "failed", [], None, None)
        failed["error"] = {"code": code, "message": error["message"]}
        payload = {"type": "response.failed", "response": failed, "sequence_number": sequence + 1}
        return [Event(sse("error", event)), Event(sse("response.failed", payload))]

    def _items(
        self, turn: Turn, ctx: Context
    ) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
        """Each output item as (added form, done form, stream deltas)."""
        items: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = []
        incomplete = turn.stop not in {"end_turn", "stop_sequence"}
        if turn.reasoning:
            reasoning_id = ctx.ids.next("rs")
            summary = []
            if (ctx.body.get("reasoning") or {}).get("summary"):
                summary = [{"type": "summary_text", "text": turn.reasoning}]
            done = {
                "id": reasoning_id,
                "type": "reasoning",
                "encrypted_content": encrypted_reasoning(turn.reasoning),
                "summary": summary,
            }
            items.append(({**done, "summary": []}, done, []))
        if turn.content or turn.kind != "reply":
            message_id = ctx.ids.next("msg")
            status = "incomplete" if incomplete and not turn.calls else "completed"
            content = [
                {"type": "output_text", "annotations": [], "logprobs": [], "text": turn.content}
            ]
            done = {
                "id": message_id,
                "type": "message",
                "status": status,
                "content": content,
                "phase": "final_answer",
                "role": "assistant",
            }
            added = {**done, "status": "in_progress", "content": []}
            items.append((added, done, pieces(turn.content, ctx.min_pieces)))
        ids = call_ids(turn.calls, ctx.ids, "call")
        for call, call_id in zip(turn.calls, ids, strict=True):
            if call.custom:
                done = {
                    "id": ctx.ids.next("ctc"),
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "input": call.arguments,
                    "name": call.name,
                }
                added = {**done, "status": "in_progress", "input": ""}
                items.append((added, done, pieces(call.arguments, ctx.min_pieces)))
                continue
            done = {
                "id": ctx.ids.next("fc"),
                "type": "function_call",
                "status": "incomplete" if turn.truncated else "completed",
                "arguments": call.arguments,
                "call_id": call_id,
                "name": call.name,
            }
            if call.namespace is not None:
                done["namespace"] = call.namespace
            added = {**done, "status": "in_progress", "arguments": ""}
            items.append((added, done, pieces(call.arguments, ctx.min_pieces)))
        return items


def _status(turn: Turn) -> tuple[str, dict[str, str] | None]:
    if turn.calls and not turn.truncated:
        return "completed", None
    reason = INCOMPLETE.get(turn.stop)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _response(
    ctx: Context,
    response_id: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: dict[str, str] | None,
) -> dict[str, Any]:
    body = ctx.body
    reasoning = body.get("reasoning") or {}
    tools = [{**tool, "strict": tool.get("strict", True)} for tool in body.get("tools") or []]
    return {
        "id": response_id,
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "background": False,
        "completed_at": ctx.created if status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _usage(ctx: Context) -> dict[str, Any]:
    counts = ctx.counts
    return {
        "input_tokens": counts.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": counts.cache_read_tokens,
            "cache_write_tokens": counts.cache_write_tokens,
        },
        "output_tokens": counts.output_tokens,
        "output_tokens_details": {"reasoning_tokens": counts.reasoning_tokens},
        "total_tokens": counts.prompt_tokens + counts.output_tokens,
    }
