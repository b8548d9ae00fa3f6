"""Build the frozen schema objects from plain TOML data, collecting every mistake.

The converter is driven by the dataclasses' type hints, so the schema in
``schema.py`` is the single description of what is valid. A mistake is reported
as an ``Issue`` at a key path (``("roles", "dev", "max_turns")``); the loader turns
paths into file and line. Nothing here knows about files.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

Path = tuple[str | int, ...]
T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Issue:
    """One mistake at a key path, with what to do about it."""

    path: Path
    message: str
    hint: str | None = None


class Invalid(Exception):
    """Raised by ``convert`` with every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues[0].message if issues else "invalid")
        self.issues = issues


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def suggest(word: str, choices: typing.Iterable[str]) -> str | None:
    """A "did you mean" hint naming the closest choice, or the choices when few."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if options and len(options) <= 8:
        return "expected one of: " + ", ".join(options)
    return None


def parse_duration(value: object) -> float | None:
    """Seconds from 90, 1.5, "90s", "5m", "2h", "1d", "250ms"; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return hints


def toml_key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def keys_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """TOML key → field, for a schema dataclass."""
    return {toml_key(f): f for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        marker = get_args(tp)[1]
        return {"duration": "a duration like 90, '30s', '5m'", "usd": "a number of USD"}.get(
            marker, _type_name(get_args(tp)[0])
        )
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return "a list"
    if origin is Mapping or (isinstance(origin, type) and issubclass(origin, Mapping)):
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        Decimal: "a number",
        bool: "true or false",
    }.get(tp, str(tp))


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class _Converter:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def fail(self, path: Path, message: str, hint: str | None = None) -> None:
        self.issues.append(Issue(path, message, hint))

    def wrong_type(self, path: Path, tp: Any, value: object) -> None:
        self.fail(path, f"{dotted(path)} must be {_type_name(tp)}, not {_toml_type(value)}")

    def value(self, tp: Any, value: object, path: Path, meta: Mapping[str, Any]) -> Any:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            base, marker = get_args(tp)[:2]
            if marker == "duration":
                seconds = parse_duration(value)
                if seconds is None:
                    self.wrong_type(path, tp, value)
                    return None
                return self._bounded(seconds, path, meta)
            if marker == "usd":
                if not isinstance(value, int | float) or isinstance(value, bool):
                    self.wrong_type(path, tp, value)
                    return None
                # The Decimal the figure was written as: 0.1 is 0.1, not its binary float.
                return self._bounded(Decimal(str(float(value))), path, meta)
            return self.value(base, value, path, meta)
        if origin is Literal:
            allowed = get_args(tp)
            if value not in allowed or isinstance(value, bool):
                hint = suggest(value, map(str, allowed)) if isinstance(value, str) else None
                self.fail(path, f"{dotted(path)} must be {_type_name(tp)}, not {value!r}", hint)
                return None
            return value
        if origin in (Union, types.UnionType):
            return self._union([a for a in get_args(tp) if a is not type(None)], value, path, meta)
        if origin is tuple:
            if not isinstance(value, list):
                self.wrong_type(path, tp, value)
                return ()
            item = get_args(tp)[0]
            return tuple(self.value(item, v, (*path, i), {}) for i, v in enumerate(value))
        if origin is Mapping:
            if not isinstance(value, dict):
                self.wrong_type(path, tp, value)
                return types.MappingProxyType({})
            item = get_args(tp)[1]
            return types.MappingProxyType(
                {k: self.value(item, v, (*path, k), meta) for k, v in value.items()}
            )
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.table(tp, value, path)
        return self._scalar(tp, value, path, meta)

    def _union(self, options: list[Any], value: object, path: Path, meta: Mapping[str, Any]) -> Any:
        if len(options) == 1:
            return self.value(options[0], value, path, meta)
        for option in options:  # pick the member whose TOML shape matches, then convert
            if _accepts(option, value):
                return self.value(option, value, path, meta)
        self.fail(
            path,
            f"{dotted(path)} must be {' or '.join(_type_name(o) for o in options)}, "
            f"not {_toml_type(value)}",
        )
        return None

    def _scalar(self, tp: Any, value: object, path: Path, meta: Mapping[str, Any]) -> Any:
        if tp is bool:
            if not isinstance(value, bool):
                self.wrong_type(path, tp, value)
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.wrong_type(path, tp, value)
                return None
            return self._bounded(value, path, meta)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.wrong_type(path, tp, value)
                return None
            return self._bounded(float(value), path, meta)
        if tp is str:
            if not isinstance(value, str):
                self.wrong_type(path, tp, value)
            return value
        raise TypeError(f"unsupported schema type {tp!r} at {dotted(path)}")  # a schema bug

    def _bounded(self, number: Any, path: Path, meta: Mapping[str, Any]) -> Any:
        low = meta.get("min", 0)
        if number < low:
            self.fail(path, f"{dotted(path)} must be at least {low}, not {number}")
        return number

    def table(self, cls: type[T], data: object, path: Path) -> T | None:
        if not isinstance(data, dict):
            self.fail(path, f"{dotted(path) or 'the file'} must be a table, not {_toml_type(data)}")
            return None
        fields = keys_of(cls)
        hints = _hints(cls)
        for key in data:
            if key not in fields:
                where = f" in {dotted(path)}" if path else ""
                self.fail((*path, key), f"unknown key {key!r}{where}", suggest(key, fields))
        kwargs: dict[str, Any] = {}
        for key, f in fields.items():
            if key in data:
                kwargs[f.name] = self.value(hints[f.name], data[key], (*path, key), f.metadata)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                where = f"[{dotted(path)}]" if path else "the file"
                self.fail(path, f"{where} is missing the required key {key!r}", None)
        if self.issues:
            return None
        return cls(**kwargs)


def _accepts(tp: Any, value: object) -> bool:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _accepts(get_args(tp)[0], value)
    if origin is tuple:
        return isinstance(value, list)
    if origin is Literal:
        return value in get_args(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float or tp is Decimal:
        return _is_number(value)
    if tp is str:
        return isinstance(value, str)
    return isinstance(value, dict)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def convert(cls: type[T], data: object, path: Path = ()) -> T:
    """Build ``cls`` from ``data``; raise ``Invalid`` with every issue found."""
    converter = _Converter()
    result = converter.table(cls, data, path)
    if converter.issues or result is None:
        raise Invalid(converter.issues)
    return result


def to_data(value: Any) -> Any:
    """The plain (JSON/TOML-shaped) data of a schema object, keyed by TOML names."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            toml_key(f): to_data(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, Mapping):
        return {k: to_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)  # as TOML and JSON write a number
    return value
