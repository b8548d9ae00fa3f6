"""Coerce plain CLI parameters without importing pydantic.

Typer 0.29 coerces every parameter through a pydantic ``TypeAdapter`` — even an
option left at ``None`` — which costs ~90 ms of imports on every command. Our
commands only take ``str``, ``int``, ``float``, ``bool``, ``Path`` and lists of
those, so ``install`` makes Typer build a small coercer for such parameters, with
the same checks (``min``/``max``, a clear "not a valid integer"); any other
annotation keeps Typer's own. Help options are built lazily per command, so this
hooks the parameter class rather than each instance.
This leans on Typer's parameter internals, which is why typer is pinned to 0.29.x
and tests/test_cli_fastparams.py checks the behaviour.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from typer import BadParameter
from typer._coercion import RuntimeParam
from typer.core import _TyperParameter

_SCALARS: dict[Any, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
}
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def _plain(annotation: Any) -> tuple[Any, bool] | None:
    """(scalar type, is_list) for annotations we coerce ourselves, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return (item, True) if item in _SCALARS else None
    return (annotation, False) if annotation in _SCALARS else None


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Coerce one value (or each of a list) to str, int, float or Path, honouring min/max."""

    scalar: Any = str
    many: bool = False

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.many:
            return [self._one(v, param, ctx) for v in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.scalar is Path:
            return value if isinstance(value, Path) else Path(value)
        if self.scalar is str:
            return str(value)
        if self.scalar is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in _TRUE | _FALSE:
                return word in _TRUE
            raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
        try:
            number = self.scalar(value)
        except (TypeError, ValueError):
            raise BadParameter(
                f"{value!r} is not a valid {_SCALARS[self.scalar]}.", ctx=ctx, param=param
            ) from None
        low, high = self.parameter_info.min, self.parameter_info.max
        if low is not None and number < low:
            raise BadParameter(f"{number} is smaller than the minimum {low}.", ctx=ctx, param=param)
        if high is not None and number > high:
            raise BadParameter(f"{number} is larger than the maximum {high}.", ctx=ctx, param=param)
        return number


def _fast_runtime_param(param: Any) -> RuntimeParam:
    if param._runtime_param is None:
        descriptor = param.type_descriptor
        plain = None
        if descriptor.file_annotation is None and not descriptor.is_choice:
            plain = _plain(descriptor.annotation)
        if plain is None:
            return _typer_runtime_param(param)
        param._runtime_param = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            scalar=plain[0],
            many=plain[1],
        )
    runtime: RuntimeParam = param._runtime_param
    return runtime


_typer_runtime_param = _TyperParameter.get_runtime_param


def install() -> None:
    """Make Typer's parameters coerce plain values without pydantic (idempotent)."""
    _TyperParameter.get_runtime_param = _fast_runtime_param  # type: ignore[method-assign,assignment]
