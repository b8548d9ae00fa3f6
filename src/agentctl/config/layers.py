"""Read the config files and layer them into one tree, remembering who set each key.

Order, lowest first: shipped ``defaults.toml`` and shipped roles/pipelines, the user
config dir, the workspace (``agentctl.toml``, ``roles/``, ``pipelines/``), then
``--set key=value``. A ``[models.<name>]`` table replaces the lower one whole;
everything else merges key by key (lists are replaced, not appended). The origin
map lets an error at any key path name the file and line that set it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.config import tomlsafe
from agentctl.config.convert import Path as KeyPath
from agentctl.config.locate import line_of
from agentctl.errors import ConfigError

_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Source:
    """One file (or ``--set``) and the key path its top level maps to."""

    label: str
    text: str | None
    base: KeyPath = ()

    def line_of(self, path: KeyPath) -> int | None:
        if self.text is None:
            return None
        return line_of(self.text, path[len(self.base) :])


@dataclass
class Layers:
    """The merged tree and, for every key path written, the last source that wrote it."""

    tree: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, Source] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def source_of(self, path: KeyPath) -> Source | None:
        for end in range(len(path), -1, -1):
            source = self.origins.get(path[:end])
            if source is not None:
                return source
        return None

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> ConfigError:
        source = self.source_of(path)
        if source is None:
            return ConfigError(message, hint=hint)
        return ConfigError(message, source=source.label, line=source.line_of(path), hint=hint)

    def apply(self, data: dict[str, Any], source: Source, *, replace_models: bool) -> None:
        """Merge ``data`` (the content of ``source``) at ``source.base``."""
        target = self.tree
        for part in source.base[:-1]:
            target = target.setdefault(str(part), {})
        if source.base:
            key = str(source.base[-1])
            existing = target.get(key)
            if isinstance(existing, dict):
                self._merge(existing, data, source.base, source, replace_models)
            else:
                target[key] = data
                self._record(data, source.base, source)
        else:
            self._merge(self.tree, data, (), source, replace_models)

    def _merge(
        self,
        into: dict[str, Any],
        data: dict[str, Any],
        path: KeyPath,
        source: Source,
        replace_models: bool,
    ) -> None:
        self.origins[path] = source
        for key, value in data.items():
            here = (*path, key)
            whole = replace_models and len(here) == 2 and here[0] == "models"
            if isinstance(value, dict) and isinstance(into.get(key), dict) and not whole:
                self._merge(into[key], value, here, source, replace_models)
            else:
                self._forget(here)
                into[key] = value
                self._record(value, here, source)

    def _record(self, value: Any, path: KeyPath, source: Source) -> None:
        self.origins[path] = source
        if isinstance(value, dict):
            for key, item in value.items():
                self._record(item, (*path, key), source)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._record(item, (*path, i), source)

    def _forget(self, path: KeyPath) -> None:
        n = len(path)
        for key in [k for k in self.origins if len(k) > n and k[:n] == path]:
            del self.origins[key]


def read_toml(path: Path, label: str) -> tuple[dict[str, Any], str]:
    """Parse one TOML file; a syntax error names the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror}", source=label) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("is not UTF-8 text", source=label, hint="save it as UTF-8") from exc
    try:
        return tomlsafe.loads(text), text
    except tomlsafe.TOMLDepthError as exc:
        raise ConfigError(
            f"invalid TOML: {exc}", source=label, hint="flatten the nesting of this file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE.search(message)
        line = int(match.group(1)) if match else None
        message = _TOML_LINE.sub("", message).strip().rstrip(".")
        raise ConfigError(
            f"invalid TOML: {message[:1].lower()}{message[1:]}",
            source=label,
            line=line,
            hint="see https://toml.io for the syntax",
        ) from exc


def _label(path: Path) -> str:
    """A short name for messages: relative to the current directory when below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def add_file(layers: Layers, path: Path, *, replace_models: bool, shipped: bool = False) -> None:
    """Layer a config file (``agentctl.toml`` shape) onto the tree."""
    label = f"<shipped>/{path.name}" if shipped else _label(path)
    data, text = read_toml(path, label)
    layers.files.append(label)
    layers.apply(data, Source(label, text), replace_models=replace_models)


def add_folder(layers: Layers, folder: Path, kind: str, *, shipped: bool = False) -> None:
    """Layer every ``<name>.toml`` in a roles/ or pipelines/ folder under ``kind.<name>``."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.toml")):
        name = path.stem
        label = f"<shipped>/{kind}/{path.name}" if shipped else _label(path)
        if not _NAME.match(name):
            raise ConfigError(
                f"{name!r} is not a valid {kind[:-1]} name",
                source=label,
                hint="use letters, digits, '-', '_' and '.'",
            )
        data, text = read_toml(path, label)
        layers.files.append(label)
        layers.apply(data, Source(label, text, (kind, name)), replace_models=False)


def parse_set(item: str) -> tuple[KeyPath, Any]:
    """``roles.dev.model=sonnet`` → (("roles", "dev", "model"), "sonnet"); values are TOML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {item!r} is not key=value", hint="e.g. --set roles.dev.model=sonnet"
        )
    parts = tuple(p.strip() for p in key.split("."))
    if any(not p for p in parts):
        raise ConfigError(f"--set {item!r}: empty part in the key {key!r}")
    try:
        value = tomlsafe.loads(f"v = {raw.strip()}")["v"]
    except tomlsafe.TOMLDepthError as exc:
        raise ConfigError(f"--set {key}: {exc}") from None
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string: --set project.base_branch=main
    return parts, value


def add_sets(layers: Layers, items: list[str]) -> None:
    for item in items:
        parts, value = parse_set(item)
        data: Any = value
        for part in reversed(parts[1:]):
            data = {part: data}
        label = f"--set {item}"
        layers.files.append(label)
        layers.apply({str(parts[0]): data}, Source(label, None), replace_models=False)
        layers.origins[parts] = Source(label, None)
