"""The chat's prompt at a terminal: it edits like a shell (prompt_toolkit).

Imported only by the interactive chat at a terminal, never at start: prompt_toolkit
costs tens of milliseconds of imports that ``agentctl --help`` must not pay. It gives
line editing, a history kept per workspace across chats, several lines in one
message (a line ending in ``\\``, Alt-Enter, or a bracketed paste: one paste is one
message), completion of the slash commands, and ``printing_above()``, inside which
what another thread writes to stdout appears above the prompt without breaking the
line being typed.

The history file is a state file like the run files: mode 0600, and every entry
passes through the key store's redactor before it is written, so a key pasted into
the chat never reaches the disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout

PROMPT = "you> "
CONTINUATION = "...  "


class RedactedHistory(FileHistory):
    """prompt_toolkit's history file, written 0600 with every known key value redacted."""

    def store_string(self, string: str) -> None:
        from agentctl import keystore

        lines = keystore.redact(string).split("\n")
        entry = f"\n# {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n" + "".join(
            f"+{line}\n" for line in lines
        )
        fd = os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a file made before (or by hand) is made private too
            os.write(fd, entry.encode("utf-8"))
        finally:
            os.close(fd)


class SlashCompleter(Completer):
    """Completes ``/commands`` (and their arguments) on a message's first line only."""

    def __init__(self, commands: Sequence[str]) -> None:
        self.commands = tuple(commands)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        typed = document.text_before_cursor
        if not typed.startswith("/") or "\n" in typed:
            return
        for command in self.commands:
            if command.startswith(typed) and command != typed:
                yield Completion(command, start_position=-len(typed))


def _bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        """Send the message, unless its last line ends with ``\\``: then go on to a new line."""
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            chosen = state.current_completion.text
            buffer.apply_completion(state.current_completion)
            if chosen.endswith(" "):  # "/model ": it wants an argument first
                return
        if buffer.document.is_cursor_at_the_end and buffer.text.endswith("\\"):
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
            return
        buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        """Alt-Enter: a new line in the same message."""
        event.current_buffer.insert_text("\n")

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        """Ctrl-C clears what is typed, as in a shell; on an empty prompt it ends the chat."""
        buffer = event.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return bindings


class TerminalPrompt:
    """Reads one message at a time from a person at a terminal."""

    def __init__(self, history_file: Path, commands: Sequence[str]) -> None:
        self.session: PromptSession[str] = PromptSession(
            history=RedactedHistory(history_file),
            completer=SlashCompleter(commands),
            complete_while_typing=True,
            key_bindings=_bindings(),
            multiline=True,  # Enter is ours (above): it sends unless the line asks for more
            prompt_continuation=CONTINUATION,
            enable_history_search=False,
        )

    def read(self) -> str:
        """The next message; EOFError on Ctrl-D, KeyboardInterrupt on Ctrl-C at an empty prompt."""
        return self.session.prompt(PROMPT).strip()

    @contextmanager
    def printing_above(self) -> Iterator[None]:
        """While reading: what other threads write to stdout goes above the prompt."""
        with patch_stdout(raw=True):
            yield
