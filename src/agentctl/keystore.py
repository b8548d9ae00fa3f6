"""The keys this process may use, in memory only, and the values it must redact.

Environments leak: any process of the same user can read ``/proc/<pid>/environ``. So
the command the user started takes the configured keys (each model's key variable,
the tracker's and forge's token variables) from its environment and from the
``[secrets] file`` (a 0600 file of ``NAME=value`` lines; the environment wins where
both set a name), removes them from its environment and keeps them here. A child
gets the keys it may use, and every value it must redact, through a pipe it inherits
(``AGENTCTL_KEYS_FD`` names the descriptor; nothing secret is in its environment),
reads it at start and closes it. Every process holding a key marks itself
non-dumpable, so another process of the same user cannot read its memory, its
environment or its descriptors through ``/proc`` (root still can).

Nothing happens at import: ``agentctl --help`` never reads a key.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.errors import SecretsFileError, StateError
from agentctl.redact import SECRET_NAME, Redactor

if TYPE_CHECKING:
    from agentctl.config import Config

ENV_FD = "AGENTCTL_KEYS_FD"
MAX_PAYLOAD = 32 * 1024  # well under a pipe's buffer: writing it never blocks
_PR_GET_DUMPABLE, _PR_SET_DUMPABLE = 3, 4


@dataclass
class _Store:
    use: dict[str, str] = field(default_factory=dict)  # name → value this process may use
    redact: set[str] = field(default_factory=set)  # every value this process must redact
    absorbed: dict[str, str] = field(default_factory=dict)  # taken out of os.environ
    inherited: bool = False  # from a parent's pipe: the environment is never consulted
    loaded_for: object = None  # the config last loaded from (one load per config)
    redactor: Redactor | None = None  # built on first use, dropped on every change
    started: bool = False  # looked for a handed-down pipe yet

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


_store = _Store()


def _state() -> _Store:
    if not _store.started:
        _store.started = True
        if ENV_FD in os.environ:  # a child whose entry point did not receive yet
            receive()
    return _store


@dataclass(frozen=True, slots=True)
class Handoff:
    """What ``Popen`` needs to give one child its keys: ``env`` to add, ``pass_fds``."""

    env: dict[str, str]
    pass_fds: tuple[int, ...]


# -- the process's own keys --------------------------------------------------------------


def get(name: str) -> str | None:
    """The value of key ``name`` for this process, or None when it has none.

    A child has exactly what its parent handed it. The command the user started has
    what it loaded, else (a name no config mentions) its environment's value.
    """
    state = _state()
    value = state.use.get(name) or state.absorbed.get(name)
    if value or state.inherited:
        return value or None
    return os.environ.get(name) or None


def redact_values() -> frozenset[str]:
    """Every key value this process knows and must keep out of what it writes or sends."""
    return frozenset(_state().redact)


def redactor() -> Redactor:
    """The process-global redactor over every known key value (and its encodings)."""
    state = _state()
    if state.redactor is None:
        state.redactor = Redactor(state.redact)
    return state.redactor


def redact(text: str) -> str:
    return redactor()(text)


def configured_names(config: Config) -> list[str]:
    """The key variables ``config`` names: every model's key, the tracker's and forge's
    token, the Celery broker's URL (it may hold the broker's password) and the
    ``[notify]`` webhook's URL (whoever has it can post to the channel)."""
    names = {m.key_env for m in config.models.values() if m.key_env}
    names.update(service_keys(config))
    names.update(notify_keys(config))
    executor = config.settings.executor
    if executor.kind == "celery" and executor.celery.broker_url_env:
        names.add(executor.celery.broker_url_env)
    return sorted(n for n in names if n)


def service_keys(config: Config) -> list[str]:
    """The token variables an orchestrator or pipeline process needs (agents get none)."""
    keys = []
    settings = config.settings
    if settings.tracker.kind == "linear":
        keys.append(settings.tracker.linear.api_key_env)
    if settings.forge.kind == "github":
        keys.append(settings.forge.github.token_env)
    return keys


def notify_keys(config: Config) -> list[str]:
    """The ``[notify]`` webhook URL's variable: the orchestrator's alone (it sends)."""
    name = config.settings.notify.webhook_url_env
    return [name] if name else []


def secrets_file(config: Config) -> Path | None:
    """``[secrets] file``, a relative path taken from the workspace root."""
    configured = config.settings.secrets.file
    if not configured:
        return None
    path = Path(configured).expanduser()
    return path if path.is_absolute() else config.workspace.root / path


def load_configured(config: Config) -> None:
    """In the command the user started: take ``config``'s keys into the store (once per config).

    Raises ``SecretsFileError`` for a secrets file that is missing, unreadable, not the
    user's own or readable by group or others.
    """
    state = _state()
    if state.inherited or state.loaded_for is config:
        return
    load(configured_names(config), secrets_file=secrets_file(config))
    state.loaded_for = config


def load(
    names: Iterable[str],
    *,
    secrets_file: Path | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> None:
    """Take the ``names`` keys from ``environ`` (removed there) and ``secrets_file``.

    The environment wins over the file; an empty variable counts as unset. Every value
    of the file, and of any variable whose name looks secret, is redacted too. A
    process that inherited its keys from a parent keeps exactly those.
    """
    state = _state()
    if state.inherited:
        return
    environ = os.environ if environ is None else environ
    names = list(names)
    from_file = read_secrets_file(secrets_file) if secrets_file is not None else {}
    taken = []
    for name in names:
        if name in environ:
            state.absorbed[name] = environ.pop(name)
            taken.append(name)
    if taken and environ is os.environ:
        _scrub_environ_block(taken)
    use = {}
    for name in names:
        value = state.absorbed.get(name) or from_file.get(name)
        if value:
            use[name] = value
    looks_secret = {v for k, v in environ.items() if SECRET_NAME.search(k) and k != ENV_FD}
    _set(
        state,
        use,
        {*use.values(), *state.absorbed.values(), *from_file.values(), *looks_secret},
    )


def forget() -> None:
    """Drop every key and value this process holds (its environment is not restored)."""
    _store.clear()


def _set(state: _Store, use: dict[str, str], values: Iterable[str]) -> None:
    state.use = use
    state.redact = {v for v in values if v}
    state.redactor = None
    if state.redact:
        mark_non_dumpable()


# -- handing keys to a child -------------------------------------------------------------


@contextmanager
def handoff(use: Iterable[str], environ: Mapping[str, str] | None = None) -> Iterator[Handoff]:
    """A pipe holding the keys ``use`` (values from the store, or ``environ`` if given)
    and every value to redact, for exactly one ``Popen`` inside the ``with``.

    The payload is written and the write end closed before the child exists; the read
    end is closed in the parent when the block ends.
    """
    values: dict[str, str] = {}
    for name in use:
        value = environ.get(name) if environ is not None else get(name)
        if value:
            values[name] = value
    payload = {"use": values, "redact": sorted(redact_values() | set(values.values()))}
    data = json.dumps(payload).encode("utf-8")
    if len(data) > MAX_PAYLOAD:
        raise StateError(f"the keys for a child process take {len(data)} bytes: too many")
    read_fd, write_fd = os.pipe()
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
        finally:
            os.close(write_fd)
        yield Handoff({ENV_FD: str(read_fd)}, (read_fd,))
    finally:
        os.close(read_fd)


def receive(environ: MutableMapping[str, str] | None = None) -> bool:
    """In a child: read the keys from the descriptor ``AGENTCTL_KEYS_FD`` names, close it.

    Returns False when no descriptor was handed down. A broken handoff leaves the
    process with no keys at all (a model call then says which key is missing).
    """
    environ = os.environ if environ is None else environ
    raw = environ.pop(ENV_FD, None)
    if raw is None:
        return False
    state = _store
    state.started = state.inherited = True
    payload: object = {}
    try:
        fd = int(raw)
        chunks = []
        try:
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        payload = json.loads(b"".join(chunks))
    except (ValueError, OSError):
        sys.stderr.write(f"agentctl: {ENV_FD}={raw!r} held no keys; continuing without any\n")
    use: dict[str, str] = {}
    redact: list[str] = []
    if isinstance(payload, dict):
        given = payload.get("use")
        if isinstance(given, dict):
            use = {str(k): v for k, v in given.items() if isinstance(v, str) and v}
        listed = payload.get("redact")
        if isinstance(listed, list):
            redact = [v for v in listed if isinstance(v, str)]
    _set(state, use, [*use.values(), *redact])
    return True


# -- the secrets file --------------------------------------------------------------------


def read_secrets_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (``#`` comments, optional ``export `` and quotes), like ssh:
    refused unless the file is the user's own and unreadable by group and others."""
    hint = f"chmod 600 {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SecretsFileError(
            f"secrets file {path} does not exist",
            hint="create it (chmod 600) or remove [secrets] file from agentctl.toml",
        ) from None
    except OSError as exc:
        raise SecretsFileError(f"secrets file {path}: {exc.strerror}", hint=hint) from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise SecretsFileError(
                f"secrets file {path} is not owned by you (uid {info.st_uid})",
                hint=f"chown {os.getuid()} {path}; chmod 600 {path}",
            )
        if info.st_mode & 0o077:
            how = "readable" if info.st_mode & 0o044 else "writable"
            raise SecretsFileError(
                f"secrets file {path} is {how} by group or others"
                f" (mode {info.st_mode & 0o777:04o})",
                hint=hint,
            )
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise SecretsFileError(f"secrets file {path} is not UTF-8 text", hint=hint) from None
    finally:
        os.close(fd)
    return parse_secrets(text, path)


def parse_secrets(text: str, path: Path | str = "secrets file") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise SecretsFileError(
                f"{path}:{number}: expected NAME=value",
                hint="one key a line, e.g. ANTHROPIC_API_KEY=sk-...; # starts a comment",
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


# -- the process itself ------------------------------------------------------------------


def mark_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: no core dumps, no ptrace, ``/proc/<pid>`` owned by root.

    Linux only; elsewhere (or when it fails) nothing changes and False is returned.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_dumpable() -> bool | None:
    """``prctl(PR_GET_DUMPABLE)`` of this process (None where it cannot be asked)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return int(ctypes.CDLL(None).prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)) == 1
    except (OSError, AttributeError):
        return None


def _scrub_environ_block(names: Iterable[str]) -> None:
    """Zero the values of ``names`` in the environment block the process started with.

    ``/proc/<pid>/environ`` shows that block, not ``os.environ``; by now the variables
    are unset (libc no longer points there), so the bytes are dead. Best effort, Linux.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            block = mem.read(end - start)
            for name in names:
                prefix = name.encode() + b"="
                at = block.find(prefix)
                while at >= 0:
                    if at == 0 or block[at - 1] == 0:
                        value_at = at + len(prefix)
                        value_end = block.find(b"\0", value_at)
                        value_end = len(block) if value_end < 0 else value_end
                        mem.seek(start + value_at)
                        mem.write(bytes(value_end - value_at))
                    at = block.find(prefix, at + 1)
    except (OSError, ValueError, IndexError):
        pass
