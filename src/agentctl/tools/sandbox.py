"""Bubblewrap around commands that run model-written code: agents' bash and gates.

The whole file system is mounted read-only, the workspace read-write, its ``.git``
read-only again; ``/tmp`` and ``/run`` are fresh tmpfs (so a workspace under /tmp is
bound after them, and host sockets under /run stay out of reach); the PID namespace
is new (``/proc`` shows only the command's own processes, never another process's
environment) and so, unless a policy allows it, is the network namespace.

A ``Policy`` adds what one kind of command needs: a writable per-run home (``HOME``
and the tools' caches point there), paths hidden under an empty read-only tmpfs (the
state folder with every run's transcript and the ledger, the user's home with its
credentials), files kept read-only although they sit in the workspace
(``agentctl.toml``, ``roles/``, ``pipelines/``, ``HEARTBEAT.md``), and the toolchain directories
(interpreter, virtualenv, compilers) bound read-only where a tmpfs or a hidden path
would cover them. Works as root and, where user namespaces are allowed, as a user.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from agentctl.tools import toolchain

INSTALL_HINT = (
    "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap) and allow "
    "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), "
    "or set the role's sandbox to 'auto' or 'none'"
)
ROOT_HINT = (
    "install bubblewrap (apt-get install bubblewrap), or accept unsandboxed commands "
    'explicitly: sandbox = "none" in the role, gate_sandbox = "none" in [project]'
)
MODES = ("auto", "none", "strict")

_NAMESPACES = ("--unshare-net", "--unshare-pid", "--die-with-parent")
# Read-only in the sandbox: the workspace's own configuration, which agentctl loads.
CONFIG_PATHS = ("agentctl.toml", "roles", "pipelines", "HEARTBEAT.md")


def _base(bwrap: str) -> list[str]:
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    if _fresh_run():
        args += ["--tmpfs", "/run"]
    return args


def _fresh_run() -> bool:
    return os.path.isdir("/run") and not os.path.islink("/run")


@functools.cache
def bwrap_status() -> tuple[bool, str]:
    """Whether bubblewrap can build our sandbox here, and why not (cached per process).

    The probe runs the real mounts and namespaces: an installed bwrap that cannot
    create a user namespace (containers, hardened kernels) counts as absent.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed"
    true = shutil.which("true") or "/bin/true"
    try:
        probe = subprocess.run(
            [*_base(bwrap), *_NAMESPACES, "--", true],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            # Its own group: bwrap's inner process can outlive the probe as a zombie
            # where init reaps slowly, and must not count as a member of our group.
            start_new_session=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bwrap does not run: {exc}"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return False, f"bwrap cannot create a sandbox here: {lines[-1] if lines else 'no output'}"
    return True, f"bubblewrap works ({bwrap})"


def bwrap_available() -> bool:
    return bwrap_status()[0]


@dataclass(frozen=True, slots=True)
class Host:
    """The facts the sandbox decision rests on; real by default, chosen by tests."""

    bwrap: Callable[[], tuple[bool, str]] = bwrap_status
    euid: Callable[[], int] = os.geteuid


def decide(
    mode: str,
    host: Host | None = None,
    *,
    what: str = "this role",
    setting: str = "the role's sandbox to 'auto' or 'none'",
) -> tuple[bool, str]:
    """``(sandboxed, refusal)``: whether to wrap the command, or why it must not run.

    ``auto`` runs unsandboxed without bubblewrap only for a normal user: a root process
    can read every other process's memory and environment (the keys of agentctl's own
    processes), so as root it refuses unless ``none`` was chosen explicitly.
    """
    host = host or Host()
    if mode == "none":
        return False, ""
    ok, why = host.bwrap()
    if ok:
        return True, ""
    if mode == "strict":
        hint = INSTALL_HINT.replace("the role's sandbox to 'auto' or 'none'", setting)
        return False, f"{what} needs the bubblewrap sandbox, which is unavailable: {why}; {hint}"
    if host.euid() == 0:
        return False, (
            f"{what} would run commands as root without a sandbox ({why}), where they could "
            f"read every process's memory and keys: refused; {ROOT_HINT}"
        )
    return False, ""


@dataclass(frozen=True, slots=True)
class Policy:
    """What one kind of sandboxed command may see and change, besides its workspace."""

    network: bool = False
    home: str | None = None  # writable; HOME and the caches point here
    hide: tuple[str, ...] = ()  # an empty read-only tmpfs over each
    read_only: tuple[str, ...] = ()  # kept read-only inside the writable workspace
    toolchain: tuple[str, ...] = ()  # commands or paths whose toolchains must be visible
    # Shown read-only where a tmpfs or a hidden home would cover them: the workspace's
    # main checkout, seen from a worktree (an editable install points into it).
    visible: tuple[str, ...] = ()


def workspace_policy(
    *,
    workspace: str | os.PathLike[str] | None,
    state_dir: str | os.PathLike[str] | None,
    home: str | os.PathLike[str] | None,
    network: bool = False,
    commands: Iterable[str] = (),
) -> Policy:
    """The policy of agentctl's own commands in one workspace: state and user homes hidden."""
    hide = [os.path.realpath(state_dir)] if state_dir is not None else []
    hide += user_homes()
    read_only: list[str] = []
    visible: tuple[str, ...] = ()
    if workspace is not None:
        base = os.path.realpath(workspace)
        read_only = [os.path.join(base, name) for name in CONFIG_PATHS]
        visible = (base,)
    return Policy(
        network=network,
        home=os.path.realpath(home) if home is not None else None,
        hide=tuple(dict.fromkeys(hide)),
        read_only=tuple(read_only),
        toolchain=tuple(commands),
        visible=visible,
    )


def user_homes() -> list[str]:
    """The home folders of the user running agentctl: credentials live there."""
    found = []
    for home in (os.environ.get("HOME"), _passwd_home()):
        if home and os.path.isabs(home):
            real = os.path.realpath(home)
            if real != "/" and os.path.isdir(real):
                found.append(real)
    return list(dict.fromkeys(found))


def _passwd_home() -> str | None:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


def home_env(env: Mapping[str, str], home: str, *, network: bool) -> dict[str, str]:
    """``env`` with HOME and the tools' caches in the per-run ``home``.

    Toolchains installed per user keep working: ``RUSTUP_HOME`` still names the real
    toolchains (read-only in the sandbox), and without network Go and Cargo are told
    not to try to download anything. Python reads and writes no bytecode cache in the
    worktree: a ``.pyc`` written a moment before an edit of the same size in the same
    second would be taken as current, and the gate would test the old code.
    """
    out = dict(env)
    rustup = toolchain.rustup_home(env)
    cache = os.path.join(home, ".cache")
    out.update(
        HOME=home,
        XDG_CACHE_HOME=cache,
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        XDG_DATA_HOME=os.path.join(home, ".local", "share"),
        GOCACHE=os.path.join(cache, "go-build"),
        GOPATH=os.path.join(home, "go"),
        GOMODCACHE=os.path.join(home, "go", "pkg", "mod"),
        npm_config_cache=os.path.join(home, ".npm"),
        PIP_CACHE_DIR=os.path.join(cache, "pip"),
        CARGO_HOME=os.path.join(home, ".cargo"),
        PYTHONPYCACHEPREFIX=os.path.join(cache, "pycache"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if rustup is not None:
        out["RUSTUP_HOME"] = rustup
    if not network:
        out.update(GOPROXY="off", CARGO_NET_OFFLINE="true", npm_config_offline="true")
    return out


def make_home(home: str | os.PathLike[str]) -> str:
    """Create the per-run home (private to the user) and return its canonical path."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    return os.path.realpath(home)


def remove_home(home: str | os.PathLike[str]) -> None:
    """Remove a per-run home, also the read-only folders Go leaves in its module cache."""

    def writable(func: Callable[..., object], path: str, exc: BaseException) -> None:
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(home, onexc=writable)
    else:  # pragma: no cover - Python 3.11
        shutil.rmtree(home, onerror=lambda f, p, e: writable(f, p, e[1]))


def _git_dirs(root: str) -> list[str]:
    """The git metadata the workspace uses: ``.git``, or a worktree's gitdir and commondir."""
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git) and not os.path.islink(dot_git):
        return [dot_git]
    if not os.path.isfile(dot_git):
        return []
    found = [dot_git]
    try:
        with open(dot_git, encoding="utf-8") as fh:
            first = fh.readline().strip()
    except OSError:
        return found
    if not first.startswith("gitdir:"):
        return found
    gitdir = os.path.realpath(os.path.join(root, first.removeprefix("gitdir:").strip()))
    dirs = [gitdir]
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
            dirs.append(os.path.realpath(os.path.join(gitdir, fh.read().strip())))
    except OSError:
        pass
    return found + sorted({d for d in dirs if os.path.isdir(d)}, key=len)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def wrap(
    root: str, argv: list[str], policy: Policy | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """``argv`` run inside the sandbox for the canonical workspace ``root``.

    ``env`` is the command's environment: the toolchains its ``PATH`` and
    ``VIRTUAL_ENV`` resolve to are made visible (read-only) like the policy's.
    """
    policy = policy or Policy()
    bwrap = shutil.which("bwrap") or "bwrap"
    hide = [h for h in policy.hide if h != root and os.path.isdir(h)]
    masks = [*(["/tmp", "/run"] if _fresh_run() else ["/tmp"]), *hide]
    ops: list[tuple[str, list[str]]] = [(h, ["--tmpfs", h]) for h in hide]
    for path in toolchain.dirs(env or {}, policy.toolchain, avoid=hide):
        if any(_under(path, m) for m in masks) and not _under(path, root):
            ops.append((path, ["--ro-bind", path, path]))
    for path in policy.visible:  # read-only; the state folder inside stays hidden
        if os.path.isdir(path) and any(_under(path, m) for m in masks) and not _under(path, root):
            ops.append((path, ["--ro-bind", path, path]))
    ops.append((root, ["--bind", root, root]))
    ops += [(path, ["--ro-bind", path, path]) for path in _git_dirs(root)]
    if policy.home is not None:
        ops.append((policy.home, ["--bind", policy.home, policy.home]))
    for named in policy.read_only:
        path = os.path.realpath(named)  # a link's target is what a write would change
        if os.path.exists(path) and _under(path, root) and path != root:
            ops.append((path, ["--ro-bind", path, path]))
    # Parents before children: a later mount on a nested path stays visible.
    ops.sort(key=lambda op: _depth(op[0]))
    args = [*_base(bwrap)]
    for _, op in ops:
        args += op
    for path in hide:  # empty and read-only, with what was bound inside it still usable
        args += ["--remount-ro", path]
    if not policy.network:
        args.append("--unshare-net")
    else:
        args += _resolver()
    return [*args, "--unshare-pid", "--die-with-parent", "--chdir", root, "--", *argv]


def _resolver() -> list[str]:
    """With network: the resolver configuration, when /etc/resolv.conf points into /run."""
    real = os.path.realpath("/etc/resolv.conf")
    if _fresh_run() and _under(real, "/run") and os.path.exists(real):
        folder = os.path.dirname(real)
        return ["--ro-bind", folder, folder]
    return []
