"""A review on a CLI backend: its verdict as a final JSON block, checked like ``finish``.

A CLI has no ``finish`` tool of ours, so the role's prompt asks for a last fenced
JSON block; ``parse`` takes the last such block (or the last bare JSON object) of the
final answer and validates it against the ``finish`` tool's schema. Nothing is
guessed: a missing or invalid block is a failed ending that says what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentctl.agent.ending import Ending
from agentctl.agent.loop import FINISH
from agentctl.llm.toolcheck import schema_errors

INSTRUCTIONS = """

When you have reviewed the change, end your final answer with exactly one fenced JSON \
block and nothing after it:
```json
{"verdict": "approve" or "request_changes", "summary": "one paragraph for the author", \
"comments": [{"file": "path", "line": 1, "body": "what to change"}]}
```"""

_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def parse(text: str) -> Ending:
    """The verdict ending of a review whose final answer is ``text``."""
    blocks = _FENCED.findall(text)
    candidate = blocks[-1] if blocks else text[text.rfind("{") :] if "{" in text else ""
    try:
        data: Any = json.loads(candidate)
    except ValueError:
        data = None
    problems = schema_errors(data, FINISH.parameters) if isinstance(data, dict) else []
    if not isinstance(data, dict) or problems:
        why = "; ".join(problems) if problems else "no JSON verdict block in the final answer"
        return Ending(
            "failed", "malformed", f"the review's verdict is unusable: {why}", {"text": text}
        )
    return Ending(
        "succeeded",
        "verdict",
        f"verdict: {data['verdict']}",
        {
            "verdict": data["verdict"],
            "summary": data.get("summary", ""),
            "comments": data.get("comments", []),
            "text": data.get("summary", ""),
        },
    )
