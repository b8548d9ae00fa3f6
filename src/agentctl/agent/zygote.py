"""The zygote: a warm process that forks agent workers, so no agent pays the SDK import.

One per workspace, user, Python executable and agentctl version (``ZygotePaths``),
started on demand by the first spawn (``agent/spawner.py``) and gone after
``[executor] zygote_idle`` without a request. It imports the agent worker and the
SDKs of the workspace's models, freezes its heap (so forked children share it), and
listens on a Unix socket in the state directory, which sandboxed agents cannot see.

A request carries the socket's token (a file beside it, 0600), the worker's
arguments, its working directory and exact environment, and three descriptors:
process.log, the key pipe (``keystore.handoff``: keys never travel in an
environment, and the zygote itself holds none) and a *go* pipe. The child forks at
once, in its own session, and waits on *go*: the requester writes it only after
journaling the child's pid, and closes it unwritten when anything failed, so a
zygote that dies mid-spawn never leaves a second worker beside the fallback.

The child then becomes exactly what ``python -m agentctl ... agent worker RUN``
would be: its environment replaced by the request's, its descriptors reduced to
0-2 and the key pipe, signal dispositions and random state reset, and the same
CLI entry point run. It never returns into the zygote's loop.

The zygote refuses to fork while it has a second thread, and exits (the next spawn
starts a fresh one) when agentctl's code on disk changed under it, when its socket
was removed or replaced, or when idle.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hmac
import importlib
import json
import os
import random
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from agentctl import failpoints, keystore
from agentctl.agent import guard
from agentctl.agent.zygote_paths import ZygotePaths, address
from agentctl.config import Config
from agentctl.llm import NO_KEY, PROVIDERS

MAX_REQUEST = 256 * 1024  # arguments and an allowlisted environment: far below this
WAKE_EVERY = 1.0  # seconds between checks for idleness and a replaced socket
LOCK_WAIT = 3.0  # a zygote being replaced (stale code) lets go of the lock this fast


# What an agent worker imports only on its first model call, per SDK: imported here
# once, shared by every child (a module imported after the fork is private memory).
_LAZY = {
    "openai": (
        "openai.resources.chat.chat",
        "openai.resources.chat.completions.completions",
        "openai.resources.responses.responses",
        "openai.lib.streaming.chat",
        "openai.lib.streaming.responses",
        "openai.pagination",
    ),
    "anthropic": (
        "anthropic.resources.messages.messages",
        "anthropic.lib.streaming",
        "anthropic.pagination",
        "opentelemetry.propagate",
    ),
}
_TRANSPORT = ("httpcore2", "h11", "truststore", "anyio.streams.tls", "encodings.idna", "stringprep")


def preload(config: Config) -> list[str]:
    """Import what every agent worker needs: agentctl's worker, and the adapter and SDK
    of each model a role uses (building a throwaway client, as a worker does)."""
    # A role on a CLI backend calls its models through the metering proxy, not an SDK.
    looped = [role for role in config.roles.values() if role.backend == "agentctl"]
    used = {name for role in looped for name in role.models}
    adapters = {}
    for name in sorted(used & set(config.models)):
        model = config.models[name]
        target = PROVIDERS.get((model.provider, model.resolved_api))
        if target:
            adapters[name] = target
    modules = ["agentctl.cli.agent", "agentctl.agent.worker", "agentctl.llm.call", "setproctitle"]
    modules += [target.partition(":")[0] for target in adapters.values()]
    if len(looped) < len(config.roles):
        modules += ["agentctl.agent.backends", "httpx2"]
    loaded = [name for name in dict.fromkeys(modules) if _imported(name)]
    for name, target in adapters.items():
        module, _, cls = target.partition(":")
        if module in loaded:
            with contextlib.suppress(Exception):  # the client's own imports, no request made
                getattr(sys.modules[module], cls)(name, config.models[name], NO_KEY)
    for sdk, names in _LAZY.items():
        if sdk in sys.modules:
            loaded += [name for name in (*names, *_TRANSPORT) if _imported(name)]
    if "setproctitle" in sys.modules:  # it finds argv's memory now, while environ is pristine
        sys.modules["setproctitle"].getproctitle()
    return loaded


def _imported(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # a broken or absent module: the child imports it again and says why
        return False
    return True


def serve(config: Config, entry: Callable[[], None]) -> int:
    """``agentctl agent zygote``: detach, take the lock, warm up, serve until idle.

    ``entry`` is the CLI's main, which each forked child runs as ``agentctl <argv>``.
    """
    paths = ZygotePaths.of(config.workspace.state_dir)
    if os.fork():  # the starter waits for this parent only: the zygote is nobody's zombie
        os._exit(0)
    os.setsid()
    os.chdir("/")  # an idle server keeps no project folder busy; each child goes to its own
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = _take_lock(paths.lock)
    if lock is None:
        return 0  # another zygote serves this workspace
    _write_private(paths.pid, f"{os.getpid()}\n")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # The collector off while importing, frozen before serving, on again in each child
    # (the recipe of the gc.freeze docs): no holes freed into pages the children share,
    # and no collection in a child writes to the objects they came with.
    gc.disable()
    preload(config)
    zygote = _Zygote(paths, lock, entry, config.settings.executor.zygote_idle)
    gc.freeze()
    print(f"agentctl zygote {os.getpid()} ready: {paths.socket}", flush=True)
    try:
        zygote.loop()
    finally:
        zygote.close()
    return 0


def _take_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def _write_private(path: Path, text: str) -> None:
    """Owner-only, replaced whole (not through ``atomic``: its fail points are the workers')."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


class _Zygote:
    """The serving loop: one request at a time, a fork each, in this one thread."""

    def __init__(self, paths: ZygotePaths, lock: int, entry: Callable[[], None], idle: float):
        self.paths, self.lock, self.entry, self.idle = paths, lock, entry, idle
        self.code = _Code.snapshot()
        self.token = secrets.token_hex(32)
        _write_private(paths.token, self.token + "\n")
        # Bound under a temporary name and renamed into place: the socket appears ready.
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temp = paths.socket.with_name(f"{paths.socket.name}.{os.getpid()}")
        temp.unlink(missing_ok=True)
        with address(temp) as where:
            self.listener.bind(where)
        os.chmod(temp, 0o600)
        self.listener.listen(64)
        os.replace(temp, paths.socket)
        self.listener.settimeout(WAKE_EVERY)
        self.inode = os.stat(paths.socket).st_ino  # is the file there still ours?

    def ours(self) -> bool:
        try:
            return os.stat(self.paths.socket).st_ino == self.inode
        except OSError:
            return False

    def loop(self) -> None:
        last = time.monotonic()
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                if time.monotonic() - last > self.idle or not self.ours():
                    return
                continue
            last = time.monotonic()
            with conn:
                if self.handle(conn) == "exit":
                    return

    def handle(self, conn: socket.socket) -> str:
        """Answer one request: a forked child's pid, or an error; "exit" to stop serving."""
        conn.settimeout(5.0)
        fds: list[int] = []
        try:
            try:
                raw, fds, _flags, _addr = socket.recv_fds(conn, MAX_REQUEST, 4)
                while raw and not raw.endswith(b"\n") and len(raw) < MAX_REQUEST:
                    more = conn.recv(MAX_REQUEST)
                    if not more:
                        break
                    raw += more
                request = json.loads(raw)
            except (OSError, ValueError) as exc:
                _reply(conn, error=f"unreadable request: {exc}")
                return "next"
            if not _same_user(conn) or not isinstance(request, dict):
                _reply(conn, error="refused: not this user's request")
                return "next"
            given = str(request.get("token", ""))
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                _reply(conn, error="refused: wrong token")
                return "next"
            if len(fds) != 3:
                _reply(conn, error=f"expected 3 descriptors, got {len(fds)}")
                return "next"
            if self.code.changed():
                _reply(conn, error="stale: agentctl's code changed since this zygote started")
                return "exit"
            threads = threading.active_count()
            if threads != 1:  # fork copies one thread; a lock another held stays locked
                _reply(conn, error=f"refused: the zygote has {threads} threads")
                return "exit"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                mine = (self.listener.fileno(), conn.fileno(), self.lock)
                _child(request, fds, mine, self.entry)
            failpoints.hit("zygote.after_fork")
            _reply(conn, pid=pid)
            return "next"
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def close(self) -> None:
        ours = self.ours()
        self.listener.close()
        if ours:  # a successor may already serve from the same names
            for path in (self.paths.socket, self.paths.token, self.paths.pid):
                path.unlink(missing_ok=True)


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _reply(conn: socket.socket, **answer: Any) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(answer).encode() + b"\n")


def _child(
    request: dict[str, Any],
    fds: list[int],
    zygote_fds: tuple[int, ...],
    entry: Callable[[], None],
) -> NoReturn:
    """The forked worker: waits for *go*, becomes a fresh ``agent worker``, never returns."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        for fd in zygote_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        log, keys, go = fds
        if os.read(go, 1) != b"g":  # the requester gave up on this spawn: nothing ran
            os._exit(0)
        os.close(go)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        guard.close_all_but({0, 1, 2, keys})
        guard.split_at_spawn(keep={0, 1, 2})  # returns in the worker; keys are its alone
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
        os.environ[keystore.ENV_FD] = str(keys)
        gc.enable()
        keystore.forget()
        failpoints.forget()
        random.seed()
        sys.argv = ["agentctl", *[str(a) for a in request["argv"]]]
        _retitle([sys.executable, "-m", *sys.argv])
        try:
            entry()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _retitle(argv: list[str]) -> None:
    """What ``ps`` shows: the worker's own command line, not the zygote's."""
    try:
        import setproctitle
    except ImportError:  # the title is for people; the run is the same without it
        return
    setproctitle.setproctitle(" ".join(argv))


class _Code:
    """agentctl's own modules as loaded, by file and mtime: a zygote never serves old code."""

    def __init__(self, files: dict[str, int]) -> None:
        self.files = files

    @classmethod
    def snapshot(cls) -> _Code:
        files = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path and (name == "agentctl" or name.startswith("agentctl.")):
                with contextlib.suppress(OSError):
                    files[path] = os.stat(path).st_mtime_ns
        return cls(files)

    def changed(self) -> bool:
        for path, mtime in self.files.items():
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False
