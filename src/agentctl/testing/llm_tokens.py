"""Deterministic token counts and prompt-cache simulation for the fake model server.

Cost tests need numbers they can predict, so the "tokenizer" is bytes/4 rounded up,
and prompt caching follows the documented rules (Anthropic: prefixes up to the
client's ``cache_control`` breakpoints; OpenAI: automatic, whole-message prefixes of
at least 1024 tokens) with the providers' own arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["messages", "chat", "responses"]
OPENAI_MIN_CACHE_TOKENS = 1024


def count_tokens(text: str) -> int:
    """``ceil(utf-8 bytes / 4)``, at least 1 for non-empty text, 0 for empty."""
    if not text:
        return 0
    return max(1, math.ceil(len(text.encode()) / 4))


@dataclass(frozen=True, slots=True)
class Unit:
    """One cacheable piece of a prompt: a tool, a system block, a content block/message."""

    key: Any
    tokens: int
    breakpoint: bool = False
    ttl: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """The usage a response reports, split the way it is billed.

    ``input_tokens`` is uncached input; cache reads/writes are separate (Anthropic's
    split). OpenAI renderers add the cache figures back into their prompt totals.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    cache_ttl: str = "5m"

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def to_dict(self) -> dict[str, int]:
        """The four billed figures (``agentctl.llm.types.Usage.to_json`` shape)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
        }


def tool_tokens(name: str, description: str, schema: Any) -> int:
    """A tool costs the tokens of its name, description and schema, the same in every API."""
    text = json.dumps(
        {"name": name, "description": description, "parameters": schema}, sort_keys=True
    )
    return count_tokens(text)


def count_request_tokens(api: Api, body: Mapping[str, Any]) -> int:
    """Input tokens of a request body: system, messages, tool calls/results and tools."""
    return sum(unit.tokens for unit in prompt_units(api, body))


def output_tokens(text: str, arguments: Iterable[str], thinking: str) -> int:
    return count_tokens(text) + sum(count_tokens(a) for a in arguments) + count_tokens(thinking)


def prompt_units(api: Api, body: Mapping[str, Any]) -> list[Unit]:
    """The prompt as cache-ordered units: tools, then system, then conversation."""
    if api == "messages":
        return _anthropic_units(body)
    if api == "chat":
        return _chat_units(body)
    return _responses_units(body)


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k != "cache_control"}
    return value


def _marked(block: Any) -> tuple[bool, str | None]:
    control = block.get("cache_control") if isinstance(block, Mapping) else None
    if not isinstance(control, Mapping):
        return False, None
    return True, control.get("ttl")


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _anthropic_block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return count_tokens(block)
    if not isinstance(block, Mapping):
        return count_tokens(_as_json(block))
    kind = block.get("type")
    if kind == "text":
        return count_tokens(str(block.get("text", "")))
    if kind == "tool_use":
        return count_tokens(_as_json(block.get("input", {})))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(_anthropic_block_tokens(part) for part in content)
        return count_tokens(str(content))
    if kind == "thinking":
        return count_tokens(str(block.get("thinking", "")))
    return count_tokens(_as_json(_strip_cache_control(block)))


def _anthropic_units(body: Mapping[str, Any]) -> list[Unit]:
    units: list[Unit] = []
    for tool in body.get("tools") or []:
        mark, ttl = _marked(tool)
        tokens = tool_tokens(
            str(tool.get("name", "")), str(tool.get("description", "")), tool.get("input_schema")
        )
        units.append(Unit(["tool", _strip_cache_control(tool)], tokens, mark, ttl))
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system or []
    for block in blocks:
        mark, ttl = _marked(block)
        units.append(
            Unit(["system", _strip_cache_control(block)], _anthropic_block_tokens(block), mark, ttl)
        )
    for message in body.get("messages") or []:
        role = message.get("role")
        content = message.get("content", "")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in parts:
            mark, ttl = _marked(block)
            key = [role, _strip_cache_control(block)]
            units.append(Unit(key, _anthropic_block_tokens(block), mark, ttl))
    control = body.get("cache_control")
    if isinstance(control, Mapping) and units:  # automatic caching: breakpoint on the last block
        last = units[-1]
        units[-1] = Unit(last.key, last.tokens, True, control.get("ttl"))
    return units


def _openai_content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else None
            total += count_tokens(text) if isinstance(text, str) else count_tokens(_as_json(part))
        return total
    return count_tokens(_as_json(content))


def _chat_units(body: Mapping[str, Any]) -> list[Unit]:
    units: list[Unit] = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        tokens = tool_tokens(
            str(fn.get("name", "")), str(fn.get("description", "")), fn.get("parameters")
        )
        units.append(Unit(["tool", tool], tokens))
    for message in body.get("messages") or []:
        tokens = _openai_content_tokens(message.get("content"))
        for call in message.get("tool_calls") or []:
            tokens += count_tokens(str((call.get("function") or {}).get("arguments", "")))
        units.append(Unit(["message", message], tokens))
    return units


def _responses_item_tokens(item: Any) -> int:
    if isinstance(item, str):
        return count_tokens(item)
    if not isinstance(item, Mapping):
        return count_tokens(_as_json(item))
    kind = item.get("type")
    if kind == "function_call":
        return count_tokens(str(item.get("arguments", "")))
    if kind == "function_call_output":
        return _openai_content_tokens(item.get("output", ""))
    if kind == "reasoning":
        return count_tokens(str(item.get("encrypted_content") or ""))
    if "content" in item:
        return _openai_content_tokens(item.get("content"))
    return count_tokens(_as_json(item))


def _responses_units(body: Mapping[str, Any]) -> list[Unit]:
    units: list[Unit] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        units.append(Unit(["instructions", instructions], count_tokens(instructions)))
    for tool in body.get("tools") or []:
        tokens = tool_tokens(
            str(tool.get("name", "")), str(tool.get("description", "")), tool.get("parameters")
        )
        units.append(Unit(["tool", tool], tokens))
    items = body.get("input")
    for item in [items] if isinstance(items, str) else items or []:
        units.append(Unit(["item", item], _responses_item_tokens(item)))
    return units


class PromptCache:
    """Per-model sets of cached prefix keys; a write lasts for the server's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, set[str]] = {}

    def usage(self, api: Api, model: str, body: Mapping[str, Any]) -> Counts:
        """Input-side counts for one request, updating the cache as a real one would."""
        units = prompt_units(api, body)
        total = sum(unit.tokens for unit in units)
        if api == "messages":
            ends = [i for i, unit in enumerate(units) if unit.breakpoint]
        else:
            ends = list(range(len(units)))
        prefixes = _prefixes(api, units, ends)
        if api != "messages":
            prefixes = [(key, n) for key, n in prefixes if n >= OPENAI_MIN_CACHE_TOKENS]
        with self._lock:
            cached = self._keys.setdefault(model, set())
            read = max((n for key, n in prefixes if key in cached), default=0)
            cached.update(key for key, _ in prefixes)
        if api == "messages":
            last = prefixes[-1][1] if prefixes else 0
            write = max(0, last - read)
            ttl = next((u.ttl for u in reversed(units) if u.breakpoint and u.ttl), None) or "5m"
            return Counts(total - read - write, 0, write, read, cache_ttl=ttl)
        return Counts(total - read, 0, 0, read)


def _prefixes(api: Api, units: list[Unit], ends: list[int]) -> list[tuple[str, int]]:
    """(key, tokens) of each prefix ``units[0..i]`` for ``i`` in ``ends``.

    The key is a running sha256 over the canonical JSON of each unit (cache_control
    already removed), so equal prefixes get equal keys in O(total size).
    """
    wanted = set(ends)
    hasher = hashlib.sha256(api.encode())
    tokens = 0
    out: list[tuple[str, int]] = []
    for index, unit in enumerate(units):
        hasher.update(_as_json(unit.key).encode() + b"\n")
        tokens += unit.tokens
        if index in wanted:
            out.append((hasher.copy().hexdigest(), tokens))
    return out
