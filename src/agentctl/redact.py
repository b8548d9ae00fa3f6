"""Take known secret values out of text before it is shown or written anywhere.

Secrets leak through tool output and transcripts, not prompts: every text a tool
returns and every record written under ``.agentctl/`` goes through a ``Redactor``
holding the values of the keys this process knows. A hostile command does not print
a key plainly, so each value is also matched in the encodings a shell makes easy:
reversed (``rev``), URL-encoded, hex, and base64 (standard and URL-safe) at each of
the three byte alignments a value can have inside a longer base64 text — only the
stable core of each, the characters that depend on the value's bytes alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MIN_LENGTH = 8  # shorter values ("1", "true", "prod") would redact ordinary words
MARK = "[redacted]"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Lines made only of base64/hex characters: `base64` wraps its output at 76 columns,
# which would split a value's encoding across lines.
_WRAPPED = re.compile(r"[A-Za-z0-9+/=_-]+(?:\r?\n[A-Za-z0-9+/=_-]+)+")


def variants(secret: str) -> set[str]:
    """``secret`` and the forms a command can print it in without naming it."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    raw = secret.encode("utf-8")
    found = {
        secret,
        secret[::-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        raw.hex(),
        raw.hex().upper(),
        json.dumps(secret)[1:-1],  # as it appears inside a JSON string
    }
    for shift in range(3):  # the value's first byte at offset 0, 1 or 2 of a 3-byte group
        encoded = base64.b64encode(bytes(shift) + raw).decode("ascii")
        start = -(-8 * shift // 6)  # the first character made of the value's bits alone
        end = 8 * (shift + len(raw)) // 6  # the last one that ends inside the value
        core = encoded[start:end]
        found.add(core)
        found.add(core.replace("+", "-").replace("/", "_"))
    return {v for v in found if len(v) >= MIN_LENGTH}


class Redactor:
    """Replaces every occurrence of each secret, or a variant of one, with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH}
        # Longest first, so a secret containing another is removed whole.
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=lambda s: (-len(s), s)))
        forms: set[str] = set()
        for secret in self.secrets:
            forms |= variants(secret)
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda s: (-len(s), s)))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], names: Iterable[str] = ()) -> Redactor:
        """The named variables' values plus those of every variable that looks like a secret."""
        wanted = set(names)
        return cls(
            value for name, value in environ.items() if name in wanted or SECRET_NAME.search(name)
        )

    def __call__(self, text: str) -> str:
        if not self.forms or not text:
            return text
        # A substring test per form is fast C; the regex is built only for what is there.
        present = [form for form in self.forms if form in text]
        if present:
            text = re.sub("|".join(map(re.escape, present)), MARK, text)
        if "\n" in text:
            text = _WRAPPED.sub(self._wrapped, text)
        return text

    def _wrapped(self, match: re.Match[str]) -> str:
        block = match.group(0)
        joined = block.replace("\r", "").replace("\n", "")
        if any(form in joined for form in self.forms):
            return MARK
        return block

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def redact_obj(self, value: Any) -> Any:
        """``value`` with every string inside dicts, lists and tuples redacted (keys too)."""
        if not self.forms:
            return value
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
