"""Checks that span tables: names that must exist, steps that must make sense.

The converter has already checked each value's shape; here we check that a role's
model exists, a step's role or action exists, a ``goto`` names a step, templates
and conditions reference values a pipeline can know, and ``extends`` has no
cycle. Every finding is an ``Issue`` at a key path, located in a file by the loader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType

from agentctl.config.actions import ACTIONS
from agentctl.config.agents import CLI_WIRE, TOOLS
from agentctl.config.convert import Issue, suggest
from agentctl.config.notify import Notify
from agentctl.config.schema import Model, Pipeline, Role, Settings, Step
from agentctl.config.templates import (
    ACTION_FIELDS,
    STEP_FIELDS,
    Names,
    TemplateSyntaxError,
    parse_condition,
    references,
)

_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MCP_ID = re.compile(r"[A-Za-z0-9_-]+")
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _missing(
    kind: str, name: str, known: Mapping[str, object], path: tuple[str | int, ...]
) -> Issue:
    return Issue(path, f"unknown {kind} {name!r}", suggest(name, known) or f"no {kind}s defined")


def check_model(name: str, model: Model) -> Iterator[Issue]:
    path = ("models", name)
    allowed = ("messages",) if model.provider == "anthropic" else ("chat", "responses")
    if model.api is not None and model.api not in allowed:
        yield Issue(
            (*path, "api"),
            f"api {model.api!r} does not fit provider {model.provider!r}",
            "expected one of: " + ", ".join(allowed),
        )
    if model.thinking_budget is not None:
        if model.provider != "anthropic":
            yield Issue(
                (*path, "thinking_budget"),
                "thinking_budget is for anthropic models",
                "use reasoning_effort for openai models",
            )
        elif model.thinking_budget >= model.max_tokens:
            yield Issue(
                (*path, "thinking_budget"),
                f"thinking_budget ({model.thinking_budget}) must be below max_tokens "
                f"({model.max_tokens})",
                "raise max_tokens or lower the budget",
            )
    if model.reasoning_effort is not None and model.provider != "openai":
        yield Issue(
            (*path, "reasoning_effort"),
            "reasoning_effort is for openai models",
            "use thinking_budget for anthropic models",
        )
    if model.base_url is not None and not model.base_url.startswith(("http://", "https://")):
        yield Issue(
            (*path, "base_url"),
            f"base_url {model.base_url!r} is not an http(s) URL",
            "e.g. http://localhost:8000/v1",
        )


def check_role(name: str, role: Role, models: Mapping[str, Model]) -> Iterator[Issue]:
    path = ("roles", name)
    listed = (role.model,) if isinstance(role.model, str) else role.model
    if not listed:
        yield Issue((*path, "model"), f"role {name!r} lists no model", "name at least one model")
    for i, model in enumerate(listed):
        if model not in models:
            where = (*path, "model") if isinstance(role.model, str) else (*path, "model", i)
            yield _missing("model", model, models, where)
    for i, model in enumerate(role.fallback):
        if model not in models:
            yield _missing("model", model, models, (*path, "fallback", i))
    for i, tool in enumerate(role.tools):
        if tool not in TOOLS:
            yield _missing("tool", tool, TOOLS, (*path, "tools", i))
    if len(set(role.tools)) != len(role.tools):
        yield Issue((*path, "tools"), f"role {name!r} lists a tool twice")
    yield from check_agent(name, role, models)


def check_agent(name: str, role: Role, models: Mapping[str, Model]) -> Iterator[Issue]:
    """A CLI backend's models must speak its wire; each MCP server is one kind, named safely."""
    path = ("roles", name)
    if role.backend in CLI_WIRE:
        provider, api = CLI_WIRE[role.backend]
        for model_name in role.models:
            model = models.get(model_name)
            if model is not None and (model.provider, model.resolved_api) != (provider, api):
                yield Issue(
                    (*path, "backend"),
                    f"role {name!r} runs on {role.backend}, which speaks {provider}/{api}, "
                    f"but its model {model_name!r} is {model.provider}/{model.resolved_api}",
                    f"give the role {provider}/{api} models only (model and fallback)",
                )
    for server_id, server in role.mcp_servers.items():
        where = (*path, "mcp_servers", server_id)
        if not _MCP_ID.fullmatch(server_id):
            yield Issue(where, f"MCP server id {server_id!r} must be letters, digits, - or _")
        if bool(server.command) == bool(server.url):
            yield Issue(where, f"MCP server {server_id!r} needs exactly one of command or url")
        if server.url is not None and not server.url.startswith(("http://", "https://")):
            yield Issue((*where, "url"), f"url {server.url!r} is not an http(s) URL")


def check_notify(notify: Notify) -> Iterator[Issue]:
    """``[notify]``: a time of day, a variable's name (never the URL), somewhere to send.

    The defaults list events but no destination: nothing is sent. A ``[notify]`` table
    changed from them that still names neither a webhook nor a command is a mistake.
    """
    path = ("notify",)
    if not _HH_MM.match(notify.digest_at):
        yield Issue(
            (*path, "digest_at"),
            f"digest_at {notify.digest_at!r} is not a time of day HH:MM (UTC)",
            'e.g. digest_at = "09:00" (00:00 to 23:59)',
        )
    name = notify.webhook_url_env
    if name is not None and not _ENV_NAME.match(name):
        # never echoed: it may be the URL itself, pasted here by mistake
        yield Issue(
            (*path, "webhook_url_env"),
            "webhook_url_env must name an environment variable, not hold the URL",
            'the URL goes in that variable or [secrets] file: webhook_url_env = "SLACK_URL"',
        )
    if notify.command and not notify.command[0].strip():
        yield Issue((*path, "command"), "command starts with an empty program name")
    if notify.on and not name and not notify.command and notify != Notify():
        yield Issue(
            path,
            "[notify] has events to send but nowhere to send them",
            'set webhook_url_env = "SLACK_WEBHOOK_URL" or command = ["notify-send", "agentctl"]',
        )


def resolve_pipelines(
    pipelines: Mapping[str, Pipeline],
) -> tuple[dict[str, Pipeline], dict[str, str], list[Issue]]:
    """Apply ``extends``: steps come from the nearest pipeline that has them, inputs merge.

    Returns the resolved pipelines, which pipeline defined each one's steps, and issues.
    """
    resolved: dict[str, Pipeline] = {}
    owners: dict[str, str] = {}
    issues: list[Issue] = []

    def resolve(name: str, chain: tuple[str, ...]) -> Pipeline | None:
        if name in resolved:
            return resolved[name]
        pipeline = pipelines[name]
        if pipeline.extends is None:
            resolved[name], owners[name] = pipeline, name
            return pipeline
        parent_name = pipeline.extends
        if parent_name not in pipelines:
            issues.append(
                _missing("pipeline", parent_name, pipelines, ("pipelines", name, "extends"))
            )
            return None
        if parent_name in chain:
            cycle = " → ".join((*chain, name, parent_name))
            issues.append(Issue(("pipelines", name, "extends"), f"extends makes a cycle: {cycle}"))
            return None
        parent = resolve(parent_name, (*chain, name))
        if parent is None:
            return None
        merged = replace(
            pipeline,
            description=pipeline.description or parent.description,
            inputs=MappingProxyType({**parent.inputs, **pipeline.inputs}),
            budget_usd=pipeline.budget_usd
            if pipeline.budget_usd is not None
            else parent.budget_usd,
            steps=pipeline.steps or parent.steps,
        )
        resolved[name] = merged
        owners[name] = name if pipeline.steps else owners[parent_name]
        return merged

    for name in pipelines:
        resolve(name, ())
    return resolved, owners, issues


def step_fields(step: Step) -> tuple[str, ...]:
    fields = STEP_FIELDS[step.kind]
    if step.uses is not None:
        fields = fields + ACTION_FIELDS.get(step.uses, ())
    return fields


def check_pipeline(
    name: str, pipeline: Pipeline, owner: str, settings: Settings
) -> Iterator[Issue]:
    base = ("pipelines", owner, "steps")
    if not pipeline.steps:
        yield Issue(
            ("pipelines", name),
            f"pipeline {name!r} has no steps",
            'add [[steps]] or extends = "feature"',
        )
        return
    ids: dict[str, int] = {}
    for i, step in enumerate(pipeline.steps):
        if not _STEP_ID.match(step.id):
            yield Issue(
                (*base, i, "id"),
                f"step id {step.id!r} must start with a letter and "
                "hold only letters, digits, '_' and '-'",
            )
        if step.id in ids:
            yield Issue(
                (*base, i, "id"),
                f"step id {step.id!r} is used twice (also step {ids[step.id] + 1})",
                "give each step its own id",
            )
        ids.setdefault(step.id, i)
    names = Names(
        inputs=frozenset({"task", *pipeline.inputs}),
        steps={step.id: step_fields(step) for step in pipeline.steps},
    )
    for i, step in enumerate(pipeline.steps):
        yield from check_step(step, (*base, i), names, settings)


def check_step(
    step: Step, path: tuple[str | int, ...], names: Names, settings: Settings
) -> Iterator[Issue]:
    kinds = [k for k in ("role", "run", "uses") if getattr(step, k) is not None]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none of them"
        yield Issue(path, f"step {step.id!r} needs exactly one of role, run or uses (has {found})")
        return
    if step.role is not None and step.role not in settings.roles:
        yield _missing("role", step.role, settings.roles, (*path, "role"))
    if step.uses is not None:
        spec = ACTIONS.get(step.uses)
        if spec is None:
            yield _missing("action", step.uses, ACTIONS, (*path, "uses"))
        else:
            for key in spec.required:
                if key not in step.with_:
                    yield Issue(
                        (*path, "uses"),
                        f"action {step.uses} needs with.{key}",
                        f'add with = {{ {key} = "..." }}',
                    )
            for key in step.with_:
                if key not in spec.required + spec.optional:
                    yield Issue(
                        (*path, "with", key),
                        f"action {step.uses} takes no argument {key!r}",
                        suggest(key, spec.required + spec.optional),
                    )
            target = step.with_.get("step")
            if (
                step.uses == "forge.review"
                and isinstance(target, str)
                and target not in names.steps
            ):
                yield _missing("step", target, names.steps, (*path, "with", "step"))
    for key, kind in (("prompt", "role"), ("model", "role"), ("with_", "uses")):
        if getattr(step, key) not in (None, {}) and step.kind != kind:
            label = key.rstrip("_")
            yield Issue((*path, label), f"{label} is only for {kind} steps", f"remove {label}")
    if step.model is not None and step.model not in settings.models:
        yield _missing("model", step.model, settings.models, (*path, "model"))
    if step.on_fail is not None and step.on_fail.goto not in names.steps:
        yield _missing("step", step.on_fail.goto, names.steps, (*path, "on_fail", "goto"))
    templates: list[tuple[tuple[str | int, ...], str]] = []
    if step.prompt is not None:
        templates.append(((*path, "prompt"), step.prompt))
    if step.run is not None:
        templates.append(((*path, "run"), step.run))
    templates += [((*path, "with", k), v) for k, v in step.with_.items() if isinstance(v, str)]
    for where, text in templates:
        try:
            refs = references(text)
        except TemplateSyntaxError as exc:
            yield Issue(where, str(exc))
            continue
        for ref in refs:
            problem = names.check(ref)
            if problem:
                yield Issue(where, problem[0], problem[1])
    if step.when is not None:
        try:
            condition = parse_condition(step.when)
        except TemplateSyntaxError as exc:
            yield Issue((*path, "when"), str(exc))
        else:
            problem = names.check(condition.ref)
            if problem:
                yield Issue((*path, "when"), problem[0], problem[1])


def check_settings(
    settings: Settings, pipelines: Mapping[str, Pipeline], owners: Mapping[str, str]
) -> Iterator[Issue]:
    for name, model in settings.models.items():
        yield from check_model(name, model)
    for name, role in settings.roles.items():
        yield from check_role(name, role, settings.models)
    for name, pipeline in pipelines.items():
        yield from check_pipeline(name, pipeline, owners.get(name, name), settings)
    orch = settings.orchestrator
    if orch.role not in settings.roles:
        yield _missing("role", orch.role, settings.roles, ("orchestrator", "role"))
    for tier in dict.fromkeys(("main", orch.role)):  # these run in agentctl's own process
        tier_role = settings.roles.get(tier)
        if tier_role is not None and tier_role.backend != "agentctl":
            yield Issue(
                ("roles", tier, "backend"),
                f"role {tier!r} is a tier (the main session or the orchestrator), which "
                f"runs agentctl's own loop, not {tier_role.backend}",
                "remove backend from it; give the CLI to the roles its pipelines run (dev, review)",
            )
    if orch.pipeline not in settings.pipelines:
        yield _missing("pipeline", orch.pipeline, settings.pipelines, ("orchestrator", "pipeline"))
    for role_name in settings.budgets.roles:
        if role_name not in settings.roles:
            yield _missing("role", role_name, settings.roles, ("budgets", "roles", role_name))
    for model_name in settings.budgets.models:
        if model_name not in settings.models:
            yield _missing("model", model_name, settings.models, ("budgets", "models", model_name))
    yield from check_notify(settings.notify)
    if settings.tracker.kind == "linear" and not settings.tracker.linear.team:
        yield Issue(
            ("tracker", "kind"),
            "tracker kind 'linear' needs a team",
            'set [tracker.linear] team = "ENG" (the team key)',
        )
    if settings.forge.kind == "github" and settings.forge.github.repo.count("/") != 1:
        yield Issue(
            ("forge", "github", "repo") if settings.forge.github.repo else ("forge", "kind"),
            "forge kind 'github' needs repo = \"owner/name\"",
            'set [forge.github] repo = "owner/name"',
        )
