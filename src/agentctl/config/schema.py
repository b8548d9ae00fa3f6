"""The configuration schema: typed, frozen objects for everything in DESIGN.md.

Each dataclass is one TOML table. Field names are the TOML keys (``key`` in a
field's metadata where Python needs another name); ``doc`` metadata is the help
text shown by ``agentctl config`` docs and "did you mean" errors. Defaults here are
the last layer below the shipped ``defaults.toml``. The converter in
``convert.py`` builds these from plain dicts and rejects unknown keys and wrong
types; ``validate.py`` checks the references between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Literal

from agentctl.config.agents import Backend, BackendOptions, McpServer
from agentctl.config.executors import Executor
from agentctl.config.notify import Notify

# A duration in seconds, written in TOML as a number of seconds or "90s", "5m", "2h", "1d".
Duration = Annotated[float, "duration"]
# A price in USD (per million tokens or a budget): a non-negative TOML number, held as
# the Decimal it was written as (converted once, at load: ``convert.py``).
Usd = Annotated[Decimal, "usd"]
# A template string: ``{inputs.task}``, ``{steps.test.output}``; ``{{`` for a literal brace.
Template = Annotated[str, "template"]

Provider = Literal["anthropic", "openai"]
Api = Literal["messages", "chat", "responses"]
Sandbox = Literal["auto", "none", "strict"]
RoleResult = Literal["text", "verdict"]
TrackerKind = Literal["local", "linear"]
ForgeKind = Literal["local", "github"]
Triage = Literal["model", "none"]
MergeMethod = Literal["merge", "squash", "rebase"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


def doc(text: str, **extra: object) -> dict[str, object]:
    return {"doc": text, **extra}


@dataclass(frozen=True, slots=True)
class LongContextPrice:
    """Prices that apply to the whole request once its prompt exceeds ``above_tokens``."""

    above_tokens: int = field(metadata=doc("prompt size (input + cache tokens) above which", min=1))
    input: Usd = field(metadata=doc("USD per million input tokens"))
    output: Usd = field(metadata=doc("USD per million output tokens"))
    cache_write: Usd | None = field(default=None, metadata=doc("USD per million cache writes"))
    cache_read: Usd | None = field(default=None, metadata=doc("USD per million cache reads"))


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; cache prices default to the input price when unset."""

    input: Usd = field(metadata=doc("USD per million input tokens"))
    output: Usd = field(metadata=doc("USD per million output tokens"))
    cache_write: Usd | None = field(default=None, metadata=doc("USD per million cache writes"))
    cache_read: Usd | None = field(default=None, metadata=doc("USD per million cache reads"))
    long_context: LongContextPrice | None = field(
        default=None, metadata=doc("a second price band for long prompts")
    )


@dataclass(frozen=True, slots=True)
class Model:
    """An endpoint and its price; roles refer to models by their table name."""

    provider: Provider = field(metadata=doc("anthropic | openai (any OpenAI-compatible server)"))
    name: str = field(metadata=doc("the model id the API expects"))
    price: Price = field(metadata=doc("USD per million tokens"))
    api: Api | None = field(
        default=None,
        metadata=doc("messages (anthropic) | chat | responses; default by provider"),
    )
    base_url: str | None = field(default=None, metadata=doc("endpoint; default: the vendor's"))
    api_key_env: str | None = field(
        default=None,
        metadata=doc("name of the environment variable holding the key (never the key)"),
    )
    max_concurrency: int | None = field(
        default=None, metadata=doc("requests in flight across all agentctl processes", min=1)
    )
    max_tokens: int = field(default=8192, metadata=doc("output tokens per call", min=1))
    context_window: int | None = field(default=None, metadata=doc("tokens", min=1))
    temperature: float | None = field(default=None, metadata=doc("sampling temperature", min=0))
    thinking_budget: int | None = field(
        default=None, metadata=doc("extended thinking budget in tokens (anthropic)", min=1024)
    )
    reasoning_effort: ReasoningEffort | None = field(
        default=None, metadata=doc("reasoning effort (openai reasoning models)")
    )
    timeout: Duration = field(default=600.0, metadata=doc("wall-clock deadline per call", min=1))
    idle_timeout: Duration = field(
        default=60.0, metadata=doc("abort a stream silent for this long", min=1)
    )
    max_retries: int = field(default=2, metadata=doc("retries of transient errors", min=0))

    @property
    def resolved_api(self) -> Api:
        if self.api is not None:
            return self.api
        return "messages" if self.provider == "anthropic" else "chat"

    @property
    def key_env(self) -> str | None:
        """The environment variable this model's key is read from (None: no key needed)."""
        if self.api_key_env is not None:
            return self.api_key_env or None
        if self.base_url is not None:
            return None  # a local OpenAI-compatible server usually needs no key
        return "ANTHROPIC_API_KEY" if self.provider == "anthropic" else "OPENAI_API_KEY"


@dataclass(frozen=True, slots=True)
class Role:
    """Which model, which tools, which limits, which prompt."""

    description: str = field(metadata=doc("one line for `roles list`"))
    model: str | tuple[str, ...] = field(
        metadata=doc("a model name, or a list tried cheapest first (the mixed tier)")
    )
    prompt: str = field(metadata=doc("the system prompt"))
    fallback: tuple[str, ...] = field(
        default=(), metadata=doc("models tried in order when the model fails after retries")
    )
    tools: tuple[str, ...] = field(default=(), metadata=doc("tools the agent may call"))
    sandbox: Sandbox = field(
        default="auto",
        metadata=doc(
            "bash sandbox: strict (bubblewrap, no network), none, auto (strict if present)"
        ),
    )
    result: RoleResult = field(
        default="text", metadata=doc("text | verdict (must submit approve/request_changes)")
    )
    max_turns: int = field(default=50, metadata=doc("model calls before the agent stops", min=1))
    budget_usd: Usd | None = field(default=None, metadata=doc("USD cap for one run of this role"))
    deadline: Duration = field(default=3600.0, metadata=doc("wall clock for one run", min=1))
    bash_timeout: Duration = field(default=300.0, metadata=doc("timeout of one command", min=1))
    tool_timeout: Duration = field(
        default=60.0, metadata=doc("timeout of one glob or grep call (stopped at it)", min=1)
    )
    loop_limit: int = field(
        default=3, metadata=doc("identical consecutive tool calls that count as a loop", min=2)
    )
    max_tool_errors: int = field(
        default=3, metadata=doc("malformed tool calls handed back before failing", min=0)
    )
    env: tuple[str, ...] = field(
        default=(), metadata=doc("extra environment variables passed to the agent's tools")
    )
    web_fetch_private: bool = field(
        default=False,
        metadata=doc("let web_fetch reach private and local addresses (intranet docs)"),
    )
    backend: Backend = field(
        default="agentctl",
        metadata=doc("who runs the agent: agentctl (its own loop), claude-code or codex"),
    )
    backend_options: BackendOptions = field(
        default_factory=BackendOptions, metadata=doc("[backend_options]: the CLI's program")
    )
    mcp_servers: Mapping[str, McpServer] = field(
        default_factory=dict, metadata=doc("[mcp_servers.<id>]: MCP servers and allowed tools")
    )

    @property
    def models(self) -> tuple[str, ...]:
        """The role's model list: the model (or list), then the fallbacks."""
        first = (self.model,) if isinstance(self.model, str) else self.model
        return first + tuple(m for m in self.fallback if m not in first)


@dataclass(frozen=True, slots=True)
class OnFail:
    goto: str = field(metadata=doc("step id to go back to, carrying the failure"))
    max: int = field(default=2, metadata=doc("times to go back before failing", min=1))


@dataclass(frozen=True, slots=True)
class Step:
    """One pipeline step: exactly one of ``role``, ``run`` or ``uses``."""

    id: str = field(metadata=doc("unique within the pipeline; used in {steps.<id>.*}"))
    role: str | None = field(default=None, metadata=doc("run an agent of this role"))
    run: Template | None = field(default=None, metadata=doc("a shell command; a gate"))
    uses: str | None = field(default=None, metadata=doc("a built-in action"))
    name: str | None = field(default=None, metadata=doc("a label for the live view"))
    prompt: Template | None = field(default=None, metadata=doc("the task given to the agent"))
    with_: Mapping[str, Template | int | float | bool] = field(
        default_factory=dict, metadata=doc("arguments of a built-in action", key="with")
    )
    model: str | None = field(default=None, metadata=doc("override the role's model"))
    when: str | None = field(
        default=None, metadata=doc("skip unless: `<ref>`, `not <ref>`, `<ref> == 'x'`, `!=`")
    )
    on_fail: OnFail | None = field(default=None, metadata=doc("{ goto = <step>, max = N }"))
    timeout: Duration | None = field(default=None, metadata=doc("wall clock for the step", min=1))
    budget_usd: Usd | None = field(default=None, metadata=doc("USD cap for the step"))

    @property
    def kind(self) -> Literal["role", "run", "uses"]:
        if self.role is not None:
            return "role"
        return "run" if self.run is not None else "uses"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A declarative list of steps run in order in one workspace."""

    description: str = field(default="", metadata=doc("one line for `pipeline list`"))
    extends: str | None = field(default=None, metadata=doc("inherit steps and inputs"))
    inputs: Mapping[str, str] = field(
        default_factory=dict, metadata=doc("named inputs with default values ({inputs.<name>})")
    )
    budget_usd: Usd | None = field(default=None, metadata=doc("USD cap for one run"))
    steps: tuple[Step, ...] = field(default=(), metadata=doc("the steps, in order"))


@dataclass(frozen=True, slots=True)
class Project:
    test_command: str | None = field(default=None, metadata=doc("the gate: how to test the code"))
    base_branch: str | None = field(
        default=None, metadata=doc("where work merges (default: the branch at init)")
    )
    gate_sandbox: Sandbox = field(
        default="auto",
        metadata=doc("sandbox of gates and `run` steps: strict, none, auto (strict if present)"),
    )
    gate_network: bool = field(
        default=False, metadata=doc("let gates and `run` steps reach the network")
    )
    protected_paths: tuple[str, ...] = field(
        default=(),
        metadata=doc("more paths (globs) whose changes wait for a person, never auto-merged"),
    )
    pythonpath: tuple[str, ...] = field(
        default=(),
        metadata=doc("folders of the worktree put first on PYTHONPATH (e.g. src), guessed by init"),
    )
    setup_command: str | None = field(
        default=None,
        metadata=doc("run once in each new worktree before its gates (e.g. build extensions)"),
    )


@dataclass(frozen=True, slots=True)
class Orchestrator:
    role: str = field(default="orchestrator", metadata=doc("the role whose model judges"))
    pipeline: str = field(default="coding-pipeline", metadata=doc("for ready tickets"))
    interval: Duration = field(default=300.0, metadata=doc("loop mode: time between ticks", min=1))
    max_parallel: int = field(default=2, metadata=doc("pipelines running at once", min=1))
    triage: Triage = field(default="model", metadata=doc("model | none (ready means ready)"))
    ready_state: str = field(default="Todo", metadata=doc("tracker state of ready tickets"))
    labels: tuple[str, ...] = field(default=(), metadata=doc("only tickets with these labels"))
    stale_after: Duration = field(
        default=120.0, metadata=doc("heartbeat age that makes a run stale", min=1)
    )
    no_progress_timeout: Duration = field(
        default=1800.0, metadata=doc("cancel a run with no new event for this long", min=1)
    )
    max_resumes: int = field(
        default=2, metadata=doc("resumes of a dead pipeline, or of one agent run", min=0)
    )
    heartbeat_file: str = field(default="HEARTBEAT.md", metadata=doc("periodic duties"))
    max_attempts: int = field(
        default=3,
        metadata=doc("automatic actions per ticket or PR in all, then it is parked", min=1),
    )
    retry_backoff: Duration = field(
        default=300.0, metadata=doc("wait before the 2nd attempt, doubling after", min=0)
    )


@dataclass(frozen=True, slots=True)
class Budgets:
    daily_usd: Usd | None = field(default=None, metadata=doc("all spend in one UTC day"))
    run_usd: Usd | None = field(default=None, metadata=doc("default cap for one run"))
    roles: Mapping[str, Usd] = field(
        default_factory=dict, metadata=doc("daily USD per role (tier)")
    )
    models: Mapping[str, Usd] = field(default_factory=dict, metadata=doc("daily USD per model"))
    fallback_usd: Usd | None = field(
        default=Decimal("2.0"),
        metadata=doc("daily USD on paid fallbacks of free or local models; then their work waits"),
    )


@dataclass(frozen=True, slots=True)
class LocalTracker:
    path: str = field(default=".agentctl/tickets", metadata=doc("ticket folder"))


@dataclass(frozen=True, slots=True)
class LinearTracker:
    team: str = field(default="", metadata=doc("team key, e.g. ENG"))
    api_key_env: str = field(default="LINEAR_API_KEY", metadata=doc("env var with the key"))
    url: str = field(default="https://api.linear.app/graphql", metadata=doc("GraphQL endpoint"))
    ready_state: str = field(default="Todo", metadata=doc("state of ready tickets"))
    in_progress_state: str = field(default="In Progress", metadata=doc("while a pipeline runs"))
    review_state: str = field(default="In Review", metadata=doc("when the PR is open"))
    done_state: str = field(default="Done", metadata=doc("after the merge"))
    canceled_state: str = field(default="Canceled", metadata=doc("never picked up"))
    blocked_state: str | None = field(
        default=None,
        metadata=doc("parked tickets move here (none: keep the state, add agentctl-blocked)"),
    )
    labels: tuple[str, ...] = field(default=(), metadata=doc("only tickets with these labels"))
    project: str | None = field(default=None, metadata=doc("only tickets of this project"))


@dataclass(frozen=True, slots=True)
class Tracker:
    kind: TrackerKind = field(default="local", metadata=doc("local | linear"))
    local: LocalTracker = field(default_factory=LocalTracker, metadata=doc("local tickets"))
    linear: LinearTracker = field(default_factory=LinearTracker, metadata=doc("Linear"))


@dataclass(frozen=True, slots=True)
class GithubForge:
    repo: str = field(default="", metadata=doc("owner/name"))
    token_env: str = field(default="GITHUB_TOKEN", metadata=doc("env var with the token"))
    url: str = field(default="https://api.github.com/graphql", metadata=doc("GraphQL endpoint"))
    remote: str = field(default="origin", metadata=doc("git remote to push branches to"))
    merge_method: MergeMethod = field(default="squash", metadata=doc("merge | squash | rebase"))


@dataclass(frozen=True, slots=True)
class Forge:
    kind: ForgeKind = field(default="local", metadata=doc("local | github"))
    github: GithubForge = field(default_factory=GithubForge, metadata=doc("GitHub"))


@dataclass(frozen=True, slots=True)
class Secrets:
    file: str | None = field(
        default=None,
        metadata=doc("a 0600 file of NAME=value keys (the environment wins where both set one)"),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The top level of ``agentctl.toml`` (roles and pipelines come from their folders)."""

    models: Mapping[str, Model] = field(default_factory=dict, metadata=doc("[models.<name>]"))
    roles: Mapping[str, Role] = field(default_factory=dict, metadata=doc("[roles.<name>]"))
    pipelines: Mapping[str, Pipeline] = field(
        default_factory=dict, metadata=doc("[pipelines.<name>]")
    )
    project: Project = field(default_factory=Project, metadata=doc("[project]"))
    orchestrator: Orchestrator = field(default_factory=Orchestrator, metadata=doc("[orchestrator]"))
    budgets: Budgets = field(default_factory=Budgets, metadata=doc("[budgets]"))
    tracker: Tracker = field(default_factory=Tracker, metadata=doc("[tracker]"))
    forge: Forge = field(default_factory=Forge, metadata=doc("[forge]"))
    executor: Executor = field(default_factory=Executor, metadata=doc("[executor]"))
    secrets: Secrets = field(default_factory=Secrets, metadata=doc("[secrets]"))
    notify: Notify = field(default_factory=Notify, metadata=doc("[notify]: webhooks, a command"))
