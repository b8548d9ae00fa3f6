"""Which programs a shell command runs, and why one exiting 126/127 could not run.

Preflight checks a gate's programs before anything is spent, and the gate step and
the merge queue say in one line that the machine lacks a program (no dev round can
fix that). Conservative: only plain commands before anything that could change the
answer (``PATH``, functions, aliases) are looked at.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Iterator

# A simple command starting with one of these changes what later commands see (PATH,
# functions, aliases): nothing after it is checked.
STOPPERS = frozenset({"source", ".", "export", "eval", "set", "alias", "hash", "shopt", "unset"})
WRAPPERS = frozenset({"env", "exec", "command", "time", "nohup", "builtin"})
KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac"}
    | {"function", "select", "{", "}", "(", ")", "((", "))", "[[", "]]", "!", "coproc"}
)
BUILTINS = frozenset(
    {"cd", "pushd", "popd", "dirs", "true", "false", ":", "test", "[", "echo", "printf", "read"}
    | {"exit", "return", "shift", "trap", "wait", "ulimit", "umask", "type", "let", "local"}
    | {"declare", "typeset", "readonly", "getopts", "kill", "jobs", "fg", "bg", "disown"}
    | {"enable", "help", "history", "logout", "mapfile", "readarray", "suspend", "times"}
)


def missing_programs(command: str, path: str | None = None) -> list[str]:
    """Programs ``command`` runs that are not on ``PATH`` (what bash would answer 127 to).

    Conservative: only plain commands before anything that could change the answer
    (``||``, a compound command, ``source``, ``export``, an expansion) are looked at.
    """
    path = os.environ.get("PATH", os.defpath) if path is None else path
    missing: list[str] = []
    for program in _programs(command):
        if "/" in program:
            if os.path.isabs(program) and not os.access(program, os.X_OK):
                missing.append(program)
            continue  # relative to the worktree, which does not exist yet
        if shutil.which(program, path=path) is None and program not in missing:
            missing.append(program)
    return missing


def _programs(command: str) -> Iterator[str]:
    """The program of each simple command of ``command``, as far as it is certain."""
    try:
        lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: bash will say so itself
        return
    for words in _simple_commands(tokens):
        program = _program_of(words)
        if program is None:
            return
        if program:
            yield program


def _simple_commands(tokens: Iterable[str]) -> Iterator[list[str]]:
    """Words of each simple command, up to a fallback (``||``) or a compound command."""
    words: list[str] = []
    redirect_target = False
    for token in tokens:
        if redirect_target:  # the file of a redirection, not a word of the command
            redirect_target = False
        elif token in ("&&", ";", "|", "&", "|&"):
            yield words
            words = []
        elif token == "||" or token in KEYWORDS:
            break  # what follows runs only if this fails, or depends on a condition
        elif token[0] in "<>" or token.startswith("&>"):
            redirect_target = True
        elif set(token) <= set("();|&<>"):
            break  # a subshell or some other construct: stop here
        else:
            words.append(token)
    yield words


def _program_of(words: list[str]) -> str | None:
    """The program of one simple command: ``""`` none to check, ``None`` stop looking."""
    i = 0
    path_set = False
    while i < len(words):
        name, eq, _ = words[i].partition("=")
        if eq and name.isidentifier():
            path_set = path_set or name == "PATH"
            i += 1
        elif words[i] in WRAPPERS:
            if words[i] == "command" and {"-v", "-V"} & set(words[i + 1 :]):
                return ""  # asks whether a program exists: not a failure to run one
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
        else:
            break
    if i == len(words):  # assignments alone: a changed PATH changes every later answer
        return None if path_set else ""
    word = words[i]
    if word in STOPPERS:
        return None
    if path_set or word in BUILTINS or any(c in word for c in "$`*?[~"):
        return ""
    return word


def cannot_run(command: str, exit_code: int, output: str, setting: str) -> str | None:
    """The one-line reason a gate or setup command exiting 126/127 could not run, else None.

    The shell answers 127 when the program is not found and 126 when it cannot be
    executed: the machine's problem, not the change's, so no agent is asked to fix it.
    """
    if exit_code not in (126, 127):
        return None
    what = "command not found" if exit_code == 127 else "not executable"
    missing = missing_programs(command)
    first = (command.split(maxsplit=1) or ["it"])[0]
    program = missing[0] if missing else _said_missing(output) or first
    fix = f"install {program}" if "/" not in program else f"make {program} exist and executable"
    return f"`{command}` could not run (exit {exit_code}: {what}): {fix} or fix {setting}"


def _said_missing(output: str) -> str | None:
    """The program bash named: ``bash: line 1: go: command not found``."""
    for line in output.splitlines():
        for marker in (": command not found", ": No such file or directory", ": Permission denied"):
            if line.endswith(marker):
                parts = line[: -len(marker)].rsplit(": ", 1)
                if len(parts) == 2 and parts[1].strip():
                    return parts[1].strip()
    return None
