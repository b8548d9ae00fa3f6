"""Take known secret values out of text before it is shown or written anywhere.

Secrets leak through tool output and transcripts, not prompts: every text a tool
returns and every record written under ``.agentctl/`` goes through a ``Redactor``
holding the values of the keys this process knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MIN_LENGTH = 8  # shorter values ("1", "true", "prod") would redact ordinary words
MARK = "[redacted]"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


class Redactor:
    """Replaces every occurrence of each secret (longest first) with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH}
        # Longest first, so a secret containing another is removed whole.
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=lambda s: (-len(s), s)))
        self._rx = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], names: Iterable[str] = ()) -> Redactor:
        """The named variables' values plus those of every variable that looks like a secret."""
        wanted = set(names)
        return cls(
            value for name, value in environ.items() if name in wanted or SECRET_NAME.search(name)
        )

    def __call__(self, text: str) -> str:
        if self._rx is None or not text:
            return text
        return self._rx.sub(MARK, text)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def redact_obj(self, value: Any) -> Any:
        """``value`` with every string inside dicts, lists and tuples redacted (keys too)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {
                self(k) if isinstance(k, str) else k: self.redact_obj(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact_obj(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.redact_obj(v) for v in value)
        return value
