"""Secret redaction: known values never reach the model or the journal."""

from __future__ import annotations

import secrets
from pathlib import Path

from agentctl.redact import Redactor
from agentctl.tools.toolbox import Toolbox


def test_longest_first_and_short_values_ignored() -> None:
    redact = Redactor(["abcdefgh", "abcdefgh-longer-1234", "short", ""])
    assert redact.secrets == ("abcdefgh-longer-1234", "abcdefgh")
    assert redact("x abcdefgh-longer-1234 y abcdefgh z short") == (
        "x [redacted] y [redacted] z short"
    )
    assert redact("abcdefghabcdefgh") == "[redacted][redacted]"
    assert not Redactor(["tiny"])
    assert Redactor([])("anything") == "anything"


def test_regex_characters_in_secrets_are_literal() -> None:
    redact = Redactor(["p@ss.word*(1)+"])
    assert redact("pw=p@ss.word*(1)+ and p@ssXword*(1)+") == "pw=[redacted] and p@ssXword*(1)+"


def test_redact_obj_walks_nested_values() -> None:
    key = "sk-" + secrets.token_hex(12)
    redact = Redactor([key])
    value = {"headers": {"x-api-key": key}, "args": [f"--key={key}", 3, None], key: (key, True)}
    assert redact.redact_obj(value) == {
        "headers": {"x-api-key": "[redacted]"},
        "args": ["--key=[redacted]", 3, None],
        "[redacted]": ("[redacted]", True),
    }


def test_from_environ_takes_named_and_secret_looking_variables() -> None:
    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-aaaaaaaaaaaa",
        "github_token": "ghp_bbbbbbbbbbbb",
        "DB_PASSWORD": "hunter2hunter2",
        "AWS_SECRET_ACCESS_KEY": "cccccccccccccccc",
        "GOOGLE_APPLICATION_CREDENTIALS": "/path/to/creds.json",
        "MY_CUSTOM": "custom-value-123",
        "HOME": "/home/someone-long",
        "PATH": "/usr/bin:/bin",
    }
    redact = Redactor.from_environ(environ, ["MY_CUSTOM"])
    assert set(redact.secrets) == {
        "sk-ant-aaaaaaaaaaaa",
        "ghp_bbbbbbbbbbbb",
        "hunter2hunter2",
        "cccccccccccccccc",
        "/path/to/creds.json",
        "custom-value-123",
    }


def test_the_toolbox_redacts_content_full_and_meta(repo: Path) -> None:
    canary = "sk-canary-" + secrets.token_hex(16)
    (repo / "leak.txt").write_text(f"key={canary}\n" * 50)
    box = Toolbox(
        repo,
        ["read", "grep", "bash"],
        sandbox="none",
        env={"PATH": "/usr/bin:/bin"},
        redact=Redactor([canary]),
        max_output=300,
    )
    for name, args in [
        ("read", {"path": "leak.txt"}),
        ("grep", {"pattern": "key="}),
        ("bash", {"command": "cat leak.txt"}),
        ("read", {"path": f"{canary}.txt"}),
    ]:
        result = box.run(name, args)
        assert canary not in result.content
        assert canary not in result.full
        assert canary not in repr(result.meta)
    assert "[redacted]" in box.run("bash", {"command": "cat leak.txt"}).full
