"""Every validation error class: file, line and what to do, all mistakes at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.config import load_config
from agentctl.config.locate import key_lines, line_of
from agentctl.errors import ConfigError
from agentctl.workspace import find_workspace


def errors_of(root: Path, files: dict[str, str], *sets: str) -> list[str]:
    for name, text in {"agentctl.toml": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(find_workspace(root), sets=sets)
    return [str(e) for e in err.value.all]


def one_error(root: Path, files: dict[str, str], *sets: str) -> str:
    found = errors_of(root, files, *sets)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # labels are relative to the current directory


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"roles/dev.toml": 'model = "sonnet"\nmax_turns = = 3\n'})
    assert msg.startswith("roles/dev.toml:2: invalid TOML")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "dev.toml").write_bytes(b"model = '\xff'\n")
    msg = one_error(tmp_path, {})
    assert msg.startswith("roles/dev.toml: is not UTF-8")


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"roles/dev.toml": '\n\nmodle = "sonnet"\n'})
    assert msg == "roles/dev.toml:3: unknown key 'modle' in roles.dev — did you mean 'model'?"


def test_unknown_top_level_table(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"agentctl.toml": "[project]\n[trackers]\nkind = 'local'\n"})
    assert msg == "agentctl.toml:2: unknown key 'trackers' — did you mean 'tracker'?"


def test_unknown_key_inside_inline_table(tmp_path: Path) -> None:
    msg = one_error(
        tmp_path,
        {
            "agentctl.toml": '[models.x]\nprovider = "openai"\nname = "m"\n'
            "price = { input = 1.0, output = 2.0, cache_rd = 0.1 }\n"
        },
    )
    assert msg.startswith("agentctl.toml:4: unknown key 'cache_rd' in models.x.price")
    assert "did you mean 'cache_read'?" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('max_turns = "many"', "roles.dev.max_turns must be an integer, not a string"),
        ("max_turns = true", "roles.dev.max_turns must be an integer, not a boolean"),
        ("max_turns = 0", "roles.dev.max_turns must be at least 1, not 0"),
        ("tools = 'bash'", "roles.dev.tools must be a list, not a string"),
        ("budget_usd = -1", "roles.dev.budget_usd must be at least 0, not -1.0"),
        ("deadline = 'soon'", "roles.dev.deadline must be a duration like 90, '30s', '5m'"),
        ("model = 3", "roles.dev.model must be a string or a list, not an integer"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, expected: str) -> None:
    msg = one_error(tmp_path, {"roles/dev.toml": f"# dev\n{text}\n"})
    assert msg.startswith(f"roles/dev.toml:2: {expected}")


def test_bad_choice_suggests_the_right_one(tmp_path: Path) -> None:
    msg = one_error(
        tmp_path,
        {
            "agentctl.toml": '[models.x]\nprovider = "antropic"\nname = "m"\n'
            "price = {input=1, output=1}\n"
        },
    )
    assert msg.startswith("agentctl.toml:2: models.x.provider must be 'anthropic' | 'openai'")
    assert "did you mean 'anthropic'?" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"agentctl.toml": '\n[models.x]\nprovider = "openai"\nname = "m"\n'})
    assert msg == "agentctl.toml:2: [models.x] is missing the required key 'price'"


def test_role_naming_a_missing_model(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"roles/dev.toml": 'model = "sonet"\n'})
    assert msg == "roles/dev.toml:1: unknown model 'sonet' — did you mean 'sonnet'?"


def test_model_list_and_fallback_entries_are_checked(tmp_path: Path) -> None:
    found = errors_of(
        tmp_path,
        {"roles/research.toml": 'model = ["haiku",\n  "gpt-9"]\nfallback = ["opus", "nope"]\n'},
    )
    assert found == [
        "roles/research.toml:2: unknown model 'gpt-9' — expected one of: coder-next, codex, "
        "haiku, opus, qwen3-32b, sonnet",
        "roles/research.toml:3: unknown model 'nope' — expected one of: coder-next, codex, "
        "haiku, opus, qwen3-32b, sonnet",
    ]


def test_unknown_tool(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"roles/dev.toml": 'tools = ["read", "bassh"]\n'})
    assert msg == "roles/dev.toml:1: unknown tool 'bassh' — did you mean 'bash'?"


def test_model_api_must_fit_provider(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {}, 'models.opus.api="responses"')
    assert "api 'responses' does not fit provider 'anthropic'" in msg
    assert msg.startswith("--set models.opus.api=")


PIPELINE_HEAD = 'description = "t"\n'


def pipeline_error(tmp_path: Path, body: str) -> str:
    return one_error(tmp_path, {"pipelines/p.toml": PIPELINE_HEAD + body})


def test_step_naming_unknown_role(tmp_path: Path) -> None:
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrole = "dve"\n')
    assert msg == "pipelines/p.toml:4: unknown role 'dve' — did you mean 'dev'?"


def test_step_naming_unknown_action(tmp_path: Path) -> None:
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nuses = "git.comit"\n')
    assert msg == "pipelines/p.toml:4: unknown action 'git.comit' — did you mean 'git.commit'?"


def test_action_arguments_are_checked(tmp_path: Path) -> None:
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nuses = "tracker.set_state"\n')
    assert msg.startswith("pipelines/p.toml:4: action tracker.set_state needs with.state")
    msg = pipeline_error(
        tmp_path, '[[steps]]\nid = "a"\nuses = "git.commit"\nwith = { mesage = "x" }\n'
    )
    assert msg == (
        "pipelines/p.toml:5: action git.commit takes no argument 'mesage' — did you mean 'message'?"
    )


def test_goto_to_a_missing_step(tmp_path: Path) -> None:
    msg = pipeline_error(
        tmp_path,
        '[[steps]]\nid = "impl"\nrole = "dev"\n\n[[steps]]\nid = "test"\nrun = "make"\n'
        'on_fail = { goto = "implement", max = 2 }\n',
    )
    assert msg == "pipelines/p.toml:9: unknown step 'implement' — did you mean 'impl'?"


def test_template_naming_an_unknown_value(tmp_path: Path) -> None:
    msg = pipeline_error(
        tmp_path, '[[steps]]\nid = "a"\nrole = "dev"\nprompt = """\nDo {inputs.tsk}\n"""\n'
    )
    assert msg == "pipelines/p.toml:5: unknown value {inputs.tsk} — did you mean 'task'?"
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrun = "echo {steps.b.output}"\n')
    assert msg == "pipelines/p.toml:4: no step 'b' in this pipeline — expected one of: a"
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrun = "echo {steps.a.verdict}"\n')
    assert "unknown value {steps.a.verdict}" in msg  # a run step has no verdict
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrun = "echo {tiket.title}"\n')
    assert "unknown value {tiket.title} — did you mean 'ticket'?" in msg


def test_template_syntax_errors_explain_literal_braces(tmp_path: Path) -> None:
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrun = "awk \'{print $1}\'"\n')
    assert "write '{{' and '}}' for literal braces" in msg
    ok = '[[steps]]\nid = "a"\nrun = "awk \'{{print $1}}\' {project.test_command}"\n'
    (tmp_path / "pipelines" / "p.toml").write_text(PIPELINE_HEAD + ok)
    assert load_config(find_workspace(tmp_path)).pipeline("p").steps[0].run


def test_when_conditions_are_parsed_not_evaluated(tmp_path: Path) -> None:
    body = '[[steps]]\nid = "a"\nrole = "review"\n[[steps]]\nid = "b"\nrun = "x"\n'
    msg = pipeline_error(tmp_path, body + "when = \"__import__('os')\"\n")
    assert msg.startswith("pipelines/p.toml:8: cannot read the condition")
    msg = pipeline_error(tmp_path, body + "when = \"steps.a.verdikt == 'approve'\"\n")
    assert "unknown value {steps.a.verdikt} — did you mean 'verdict'?" in msg
    (tmp_path / "pipelines" / "p.toml").write_text(
        PIPELINE_HEAD + body + "when = \"steps.a.verdict == 'approve'\"\n"
    )
    assert load_config(find_workspace(tmp_path)).pipeline("p").steps[1].when


def test_step_kind_must_be_exactly_one(tmp_path: Path) -> None:
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrole = "dev"\nrun = "make"\n')
    assert "needs exactly one of role, run or uses (has role and run)" in msg
    msg = pipeline_error(tmp_path, '[[steps]]\nid = "a"\nrun = "make"\nprompt = "hi"\n')
    assert msg == "pipelines/p.toml:5: prompt is only for role steps — remove prompt"


def test_duplicate_step_ids(tmp_path: Path) -> None:
    msg = pipeline_error(
        tmp_path, '[[steps]]\nid = "a"\nrun = "x"\n[[steps]]\nid = "a"\nrun = "y"\n'
    )
    assert msg.startswith("pipelines/p.toml:6: step id 'a' is used twice")


def test_extends_missing_and_cycles(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"pipelines/p.toml": 'extends = "featur"\n'})
    assert msg == "pipelines/p.toml:1: unknown pipeline 'featur' — did you mean 'feature'?"
    found = errors_of(
        tmp_path, {"pipelines/p.toml": 'extends = "q"\n', "pipelines/q.toml": 'extends = "p"\n'}
    )
    assert any("extends makes a cycle" in e for e in found)


def test_steps_in_an_array_of_inline_tables_are_located(tmp_path: Path) -> None:
    msg = pipeline_error(
        tmp_path,
        'steps = [\n  { id = "a", run = "x" },\n  { id = "b", role = "nobody" },\n]\n',
    )
    assert msg.startswith("pipelines/p.toml:4: unknown role 'nobody'")


def test_cross_table_references(tmp_path: Path) -> None:
    found = errors_of(
        tmp_path,
        {
            "agentctl.toml": '[orchestrator]\npipeline = "codng-pipeline"\n'
            '[budgets]\nroles = { dve = 1.0 }\n[tracker]\nkind = "linear"\n'
        },
    )
    assert found[0].startswith("agentctl.toml:2: unknown pipeline 'codng-pipeline'")
    assert found[1].startswith("agentctl.toml:4: unknown role 'dve'")
    assert found[2].startswith("agentctl.toml:6: tracker kind 'linear' needs a team")


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    found = errors_of(
        tmp_path,
        {"roles/dev.toml": 'modle = "x"\n', "roles/review.toml": "max_turns = 'a'\n"},
    )
    assert [e.split(":")[0] for e in found] == ["roles/dev.toml", "roles/review.toml"]


def test_invalid_role_file_name(tmp_path: Path) -> None:
    msg = one_error(tmp_path, {"roles/bad name.toml": 'model = "opus"\n'})
    assert "'bad name' is not a valid role name" in msg


def test_locator_skips_multiline_strings_and_counts_array_tables() -> None:
    text = (
        'prompt = """\nmodel = "fake"\n"""\nmodel = "real"\n'
        "[[steps]]\nid = 'a'\n[[steps]]\nid = 'b'\nwith = { x = 1, y = { z = 2 } }\n"
    )
    lines = key_lines(text)
    assert lines[("model",)] == 4
    assert lines[("steps", 1, "id")] == 8
    assert lines[("steps", 1, "with", "y", "z")] == 9
    assert line_of(text, ("steps", 1, "missing")) == 7
    assert line_of(text, ("nothing",)) is None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"roles/dev.toml": 'backend = "claude-code"\n'},
            "roles/dev.toml:1: role 'dev' runs on claude-code, which speaks anthropic/messages,"
            " but its model 'coder-next' is openai/chat — give the role anthropic/messages"
            " models only (model and fallback)",
        ),
        (
            {"roles/dev.toml": 'model = "sonnet"\nfallback = []\nbackend = "codx"\n'},
            "roles/dev.toml:3: roles.dev.backend must be 'agentctl' | 'claude-code' |"
            " 'codex', not 'codx' — did you mean 'codex'?",
        ),
        (
            {"roles/main.toml": 'fallback = []\nbackend = "claude-code"\n'},
            "roles/main.toml:2: role 'main' is a tier (the main session or the orchestrator),"
            " which runs agentctl's own loop, not claude-code — remove backend from it; give"
            " the CLI to the roles its pipelines run (dev, review)",
        ),
        (
            {"roles/dev.toml": '[backend_options]\nexecutabel = "claude"\n'},
            "roles/dev.toml:2: unknown key 'executabel' in roles.dev.backend_options — did"
            " you mean 'executable'?",
        ),
        (
            {"roles/dev.toml": '[mcp_servers.time]\ncommand = ["t"]\nurl = "http://x/mcp"\n'},
            "roles/dev.toml:1: MCP server 'time' needs exactly one of command or url",
        ),
        (
            {"roles/dev.toml": '[mcp_servers."a b"]\ncommand = ["t"]\n'},
            "roles/dev.toml:1: MCP server id 'a b' must be letters, digits, - or _",
        ),
    ],
)
def test_backends_and_mcp_servers_are_checked(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    assert one_error(tmp_path, files) == expected
