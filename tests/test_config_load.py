"""Loading: layering order, model replacement, --set, discovery, frozen objects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agentctl.config import load_config
from agentctl.errors import ConfigError, NotFoundError, WorkspaceError
from agentctl.workspace import find_workspace


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(root: Path, *sets: str):
    return load_config(find_workspace(root), sets=sets)


def test_shipped_defaults_alone_are_valid_and_map_the_tiers(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert set(config.models) == {"opus", "sonnet", "haiku", "codex", "coder-next", "qwen3-32b"}
    assert set(config.roles) == {"main", "orchestrator", "dev", "review", "research", "devops"}
    assert set(config.pipelines) == {"feature", "coding-pipeline", "review-pr", "research"}
    tiers = {name: role.models[0] for name, role in config.roles.items()}
    assert tiers == {
        "main": "opus",
        "orchestrator": "sonnet",
        "dev": "coder-next",
        "review": "qwen3-32b",
        "research": "qwen3-32b",
        "devops": "codex",
    }
    research = config.role("research").model
    assert isinstance(research, tuple) and len(research) >= 2  # a list, cheapest first
    prices = [config.models[m].price.input for m in research]
    assert prices == sorted(prices)
    assert config.models["codex"].resolved_api == "responses"
    assert config.role("review").result == "verdict"
    assert "write" not in config.role("review").tools


def test_every_shipped_price_has_all_four_figures_or_is_free(tmp_path: Path) -> None:
    for name, model in load(tmp_path).models.items():
        price = model.price
        if price.input == 0 and price.output == 0:
            continue
        assert price.cache_write is not None and price.cache_read is not None, name
        assert price.cache_read < price.input <= price.cache_write, name


def test_workspace_model_table_replaces_the_shipped_one_whole(tmp_path: Path) -> None:
    write(
        tmp_path / "agentctl.toml",
        '[models.opus]\nprovider = "anthropic"\nname = "claude-opus-4-5"\n'
        "price = { input = 5.0, output = 25.0 }\n",
    )
    opus = load(tmp_path).models["opus"]
    assert opus.name == "claude-opus-4-5"
    assert opus.max_tokens == 8192  # the schema default, not the shipped 16000
    assert opus.price.cache_read is None  # not merged from the shipped price table


def test_roles_and_other_tables_layer_key_by_key(tmp_path: Path) -> None:
    write(tmp_path / "roles" / "dev.toml", 'model = "sonnet"\n')
    write(tmp_path / "agentctl.toml", "[orchestrator]\nmax_parallel = 5\n")
    config = load(tmp_path)
    dev = config.role("dev")
    assert dev.model == "sonnet"
    assert "dev agent" in dev.prompt  # the shipped prompt is kept
    assert config.settings.orchestrator.max_parallel == 5
    assert config.settings.orchestrator.pipeline == "coding-pipeline"
    assert config.origin("roles", "dev", "model") == str(tmp_path / "roles" / "dev.toml")


def test_layer_order_shipped_user_workspace_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user"
    monkeypatch.setenv("AGENTCTL_CONFIG_DIR", str(user))
    write(user / "config.toml", "[orchestrator]\nmax_parallel = 3\ninterval = '1m'\n")
    write(user / "roles" / "review.toml", "max_turns = 11\n")
    ws = tmp_path / "ws"
    write(ws / "agentctl.toml", "[orchestrator]\nmax_parallel = 4\n")
    config = load(ws, "orchestrator.interval=90", "roles.review.budget_usd=0.5")
    orch = config.settings.orchestrator
    assert orch.max_parallel == 4  # workspace over user
    assert orch.interval == 90.0  # --set over user
    assert config.role("review").max_turns == 11  # user over shipped
    assert config.role("review").budget_usd == 0.5
    assert load(ws).settings.orchestrator.interval == 60.0


def test_set_parses_toml_values_and_bare_words(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "project.base_branch=develop",
        'project.test_command="make check"',
        "roles.dev.tools=['read', 'bash']",
    )
    assert config.settings.project.base_branch == "develop"
    assert config.settings.project.test_command == "make check"
    assert config.role("dev").tools == ("read", "bash")


def test_set_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "roles.dev.max_turns=lots")
    assert "--set roles.dev.max_turns=lots" in str(err.value)
    with pytest.raises(ConfigError, match="not key=value"):
        load(tmp_path, "roles.dev.model")


def test_durations_accept_units(tmp_path: Path) -> None:
    write(
        tmp_path / "agentctl.toml",
        "[orchestrator]\ninterval = '5m'\nstale_after = '90s'\nno_progress_timeout = '2h'\n",
    )
    orch = load(tmp_path).settings.orchestrator
    assert (orch.interval, orch.stale_after, orch.no_progress_timeout) == (300.0, 90.0, 7200.0)


def test_extends_inherits_steps_and_merges_inputs(tmp_path: Path) -> None:
    write(tmp_path / "agentctl.toml", "")
    write(
        tmp_path / "pipelines" / "feature-x.toml",
        'extends = "feature"\n[inputs]\ntask = "Add a --verbose flag"\n',
    )
    config = load(tmp_path)
    child, parent = config.pipeline("feature-x"), config.pipeline("feature")
    assert child.steps == parent.steps
    assert child.inputs["task"] == "Add a --verbose flag"
    assert child.budget_usd == parent.budget_usd
    assert child.description == parent.description


def test_without_agentctl_toml_workspace_folders_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "roles" / "dev.toml", 'model = "sonnet"\n')
    assert load(tmp_path).role("dev").model == "coder-next"


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    config = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.role("dev").max_turns = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.models["evil"] = config.models["opus"]  # type: ignore[index]


def test_unknown_names_say_what_exists(tmp_path: Path) -> None:
    config = load(tmp_path)
    with pytest.raises(NotFoundError, match="did you mean 'review'"):
        config.role("reveiw")
    with pytest.raises(NotFoundError, match="no pipeline named"):
        config.pipeline("nope")


def test_workspace_found_upward_but_not_past_the_git_root(tmp_path: Path) -> None:
    write(tmp_path / "agentctl.toml", "")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    ws = find_workspace(deep)
    assert ws.config_file is None  # the outer agentctl.toml belongs to another tree
    assert ws.root == repo and ws.state_dir == repo / ".agentctl"
    write(repo / "agentctl.toml", "")
    ws = find_workspace(deep)
    assert ws.config_file == repo / "agentctl.toml"


def test_worktree_of_a_workspace_uses_the_outer_workspace(tmp_path: Path) -> None:
    write(tmp_path / "agentctl.toml", "")
    (tmp_path / ".git").mkdir()
    tree = tmp_path / ".agentctl" / "worktrees" / "ENG-1"
    tree.mkdir(parents=True)
    (tree / ".git").write_text("gitdir: elsewhere\n")
    write(tree / "agentctl.toml", "")
    assert find_workspace(tree).root == tmp_path


def test_outside_git_state_lives_in_the_current_directory(tmp_path: Path) -> None:
    ws = find_workspace(tmp_path)
    assert ws.git_root is None or ws.git_root != tmp_path
    assert ws.state_dir == tmp_path / ".agentctl"


def test_explicit_workspace_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such directory"):
        find_workspace(explicit=tmp_path / "missing")
    assert find_workspace(explicit=tmp_path).root == tmp_path.resolve()
