"""``[notify]``: events of real ticks reach a real HTTP receiver once each, a failing
receiver is retried with backoff and said once, Slack gets Block Kit, the daily digest
comes at its time with ``agentctl cost``'s figures, and the webhook's URL (a secret)
is written nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentctl import keystore
from agentctl.config import ConfigError, load_config
from agentctl.orchestrator.home import Home
from agentctl.orchestrator.tick import Tick, TickReport
from agentctl.runs import utc_now
from agentctl.testing.llm_server import LLMServer, Turn
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests import test_orchestrator_tick as ticks
from tests.conftest import Invoke, git
from tests.test_orchestrator_attempts import Clock, no_retries_for_the_coder
from tests.test_orchestrator_tick import APPROVE, settle
from tests.test_paid_fallback import configure as paid_fallback

server = ticks.server  # the scripted model server and the demo project of the tick tests
project = ticks.project
HOOK_ENV = "AGENTCTL_TEST_HOOK_URL"


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records each POST's JSON and answers ``status``
    (or the next of ``statuses``)."""

    status: int = 200
    statuses: deque[int] = field(default_factory=deque)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    url: str = ""

    def kinds(self) -> list[str]:
        return [str(b.get("event")) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                got.bodies.append(body)
                got.paths.append(self.path)
                status = got.statuses.popleft() if got.statuses else got.status
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"invalid_token")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    # the path plays the part of a Slack webhook's secret
    got.url = f"http://127.0.0.1:{httpd.server_address[1]}/services/T0/B0/s3cr3tW3bh00kT0ken"
    try:
        yield got
    finally:
        httpd.shutdown()
        httpd.server_close()


def notify_table(root: Path, body: str) -> None:
    with (root / "agentctl.toml").open("a") as config:
        config.write(f"\n[notify]\n{body}")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "notify settings")


def no_secret_written(root: Path, receiver: Receiver) -> None:
    """The URL (and its secret path alone) in no file under .agentctl/: state, journals,
    the outbox, the ledger, the runs' own files."""
    secret = receiver.url.rsplit("/", 1)[1].encode()
    leaked = [
        path
        for path in (root / ".agentctl").rglob("*")
        if path.is_file() and secret in path.read_bytes()
    ]
    assert leaked == []


def pending(root: Path) -> list[dict[str, Any]]:
    path = Home.of(root / ".agentctl").dir / "notify" / "pending.json"
    return json.loads(path.read_text())["pending"] if path.exists() else []


# -- events of real ticks, once each ----------------------------------------------------


def test_failed_parked_and_merged_arrive_once_each(
    project: Path,
    server: LLMServer,
    receiver: Receiver,
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T-1 is merged, T-2's model refuses the key (parked), T-3's is down (failed, retried
    later); four ticks through the CLI, three events, none twice; then the digest."""
    config = project / "agentctl.toml"
    config.write_text(
        config.read_text().replace(
            "max_parallel = 2\n", 'max_parallel = 3\nmax_attempts = 3\nretry_backoff = "2d"\n'
        )
    )
    no_retries_for_the_coder(project)
    notify_table(
        project, f'webhook_url_env = "{HOOK_ENV}"\non = ["failed", "parked", "merged", "digest"]\n'
    )
    monkeypatch.setenv(HOOK_ENV, receiver.url)
    server.script_for(
        "demo-coder",
        "T-1:",
        Turn.tool_call("write", {"path": "feature_0.py", "content": "FEATURE = 0\n"}),
        Turn.text("Added."),
    )
    server.script_for("demo-reviewer", "T-1:", APPROVE)
    server.script_for("demo-coder", "T-2:", Turn.error(401))
    server.script_for("demo-coder", "T-3:", Turn.error(503, message="down for maintenance"))
    home = Home.of(project / ".agentctl")
    home.make()
    home.save_state({"notify": {"digest_day": utc_now().date().isoformat()}})  # not today's

    outputs = []
    for _ in range(4):
        result = cli("orchestrate", "--once", cwd=project)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
        settle(project)
    assert sorted(receiver.kinds()) == ["failed", "merged", "parked"], outputs
    by_kind = {b["event"]: b for b in receiver.bodies}
    assert by_kind["merged"]["text"].startswith("PR #1 (T-1): ")
    assert by_kind["parked"]["text"].startswith("T-2: ")
    assert by_kind["failed"]["text"].startswith("T-3: ")
    for body in receiver.bodies:
        assert body["type"] == "agentctl.notification"
        assert body["workspace"] == project.name and body["at"].endswith("Z")
    assert receiver.paths == [receiver.paths[0]] * 3
    assert pending(project) == []
    assert LocalTracker(project / ".agentctl").get("T-1").state == "Done"

    # The digest of these ticks, on the first tick past its time (injected clock).
    at = (utc_now() + timedelta(hours=2)).replace(minute=30, second=0, microsecond=0)
    state = Home.of(project / ".agentctl").load_state()
    state["notify"].pop("digest_day")
    Home.of(project / ".agentctl").save_state(state)
    config.write_text(config.read_text() + f'digest_at = "{at:%H:%M}"\n')
    cfg = load_config(find_workspace(project))
    keystore.load_configured(cfg)
    Tick(cfg, clock=lambda: at - timedelta(minutes=1)).run()
    assert len(receiver.bodies) == 3  # not yet
    Tick(cfg, clock=lambda: at + timedelta(minutes=1)).run()
    digest = receiver.bodies[-1]
    assert digest["event"] == "digest", receiver.kinds()
    figures = digest["digest"]
    assert [line.split(":")[0] for line in figures["merged"]] == ["PR #1 (T-1)"]
    assert [line.split(":")[0] for line in figures["parked"]] == ["T-2"]
    assert [line.split(":")[0] for line in figures["failed"]] == ["T-3"]
    # Every pipeline that ended in the window, from the run store (also those run by
    # hand, which no tick saw): each line names its ticket, status and run.
    ended = {line.split(":")[0]: line for line in figures["pipelines"]}
    assert figures["counts"]["pipelines"] == len(figures["pipelines"]) >= 3
    assert any(name.endswith(" T-1") and ": succeeded" in line for name, line in ended.items())
    assert any(name.endswith(" T-3") and ": failed" in line for name, line in ended.items())
    assert "pipelines ended" in digest["text"]
    assert Decimal(figures["spend"]["total_usd"]) > 0
    Tick(cfg, clock=lambda: at + timedelta(minutes=5)).run()
    assert receiver.kinds().count("digest") == 1
    no_secret_written(project, receiver)
    server.assert_complete()


# -- a failing receiver ---------------------------------------------------------------------


@pytest.fixture
def fallback_and_budget(workspace: Path, cli: Invoke) -> Iterator[tuple[Path, LLMServer]]:
    """Two runs: one that fell back to a paid model, one paused on its budget."""
    with LLMServer() as llm:
        paid_fallback(workspace, llm, "2.0")
        llm.script("paid-x", Turn.text("Answered by the paid fallback."))
        assert cli("agent", "run", "dev", "Say hello", cwd=workspace).exit_code == 0
        paused = cli("agent", "run", "dev", "Say it again", "--budget", "0.0000001")
        assert paused.exit_code != 0 and "budget" in paused.output, paused.output
        yield workspace, llm


def ticking(root: Path, clock: Clock) -> TickReport:
    config = load_config(find_workspace(root))
    keystore.load_configured(config)  # what the CLI does first: the URL into the key store
    return Tick(config, clock=clock).run()


@pytest.mark.parametrize("recovers", [True, False])
def test_a_failing_receiver_is_retried_with_backoff_and_said_once(
    fallback_and_budget: tuple[Path, LLMServer],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    recovers: bool,
) -> None:
    root, _ = fallback_and_budget
    notify_table(
        root, f'webhook_url_env = "{HOOK_ENV}"\non = ["fallback", "budget"]\nmax_attempts = 3\n'
    )
    monkeypatch.setenv(HOOK_ENV, receiver.url)
    receiver.status = 500
    clock = Clock()
    first = ticking(root, clock)
    assert len(first.fallbacks) == 1
    (said,) = [e for e in first.errors if e.startswith("notify webhook")]
    assert said == "notify webhook: HTTP 500: invalid_token"  # no URL in it
    assert len(receiver.bodies) == 1  # a failing endpoint is tried once a tick
    assert [p["attempts"] for p in pending(root)] == [1, 1]
    sent: list[int] = []
    errors: list[str] = []
    for step in range(8):  # every 30 s: tries at 60 s, then 180 s (1, then 2 minutes)
        clock.advance(30)
        if recovers and step == 4:
            receiver.status = 200
        before = len(receiver.bodies)
        report = ticking(root, clock)
        errors += report.errors
        sent += [(step + 1) * 30] * (len(receiver.bodies) - before)
    if recovers:
        assert sent == [60, 180, 180], sent  # the 3rd attempt goes through, both events
        assert errors == []  # said once: the first tick only
        delivered = receiver.bodies[-2:]
        assert sorted(b["event"] for b in delivered) == ["budget", "fallback"]
        (budget,) = [b for b in delivered if b["event"] == "budget"]
        assert "paused: budget" in budget["text"], budget
    else:
        assert sent == [60, 180], sent
        assert errors == [
            "notify webhook: gave up 2 notification(s) after 3 attempts (HTTP 500: invalid_token)"
        ]
    assert pending(root) == []
    state = Home.of(root / ".agentctl").load_state()
    assert bool(state["notify"]["failing"]) is not recovers
    no_secret_written(root, receiver)


# -- Slack, a command, the digest ------------------------------------------------------------


def check_slack(body: dict[str, Any]) -> None:
    """Slack's incoming-webhook payload: ``text`` (the notification's fallback) and Block
    Kit ``blocks``: a section's text mrkdwn up to 3000 characters, a header's plain_text
    up to 150 (api.slack.com/messaging/webhooks, /reference/block-kit/blocks)."""
    assert set(body) <= {"text", "blocks"} and isinstance(body["text"], str) and body["text"]
    blocks = body["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in ("section", "header"), block
        text = block["text"]
        assert set(block) == {"type", "text"} and set(text) == {"type", "text"}
        if block["type"] == "section":
            assert text["type"] == "mrkdwn" and 0 < len(text["text"]) <= 3000
        else:
            assert text["type"] == "plain_text" and 0 < len(text["text"]) <= 150
            assert "\n" not in text["text"]


def test_slack_blocks_a_command_and_the_digest_at_its_time(
    fallback_and_budget: tuple[Path, LLMServer],
    receiver: Receiver,
    cli: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = fallback_and_budget
    out = tmp_path / "notified.jsonl"
    script = tmp_path / "record.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    at = (utc_now() + timedelta(hours=2)).replace(minute=30, second=0, microsecond=0)
    notify_table(
        root,
        f'webhook_url_env = "{HOOK_ENV}"\nformat = "slack"\n'
        f"command = {json.dumps([sys.executable, str(script), str(out)])}\n"
        f'on = ["fallback", "budget", "digest"]\ndigest_at = "{at:%H:%M}"\n',
    )
    monkeypatch.setenv(HOOK_ENV, receiver.url)
    clock = Clock()
    clock.now = at - timedelta(minutes=1)
    ticking(root, clock)
    commanded = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(c["event"] for c in commanded) == ["budget", "fallback"]
    assert len(receiver.bodies) == 2
    for body in receiver.bodies:
        check_slack(body)
        assert body["blocks"][0]["type"] == "section"
    clock.advance(120)  # past digest_at
    ticking(root, clock)
    commanded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["event"] for c in commanded][2:] == ["digest"]
    digest = commanded[-1]["digest"]
    assert digest["until"] == f"{clock.now:%Y-%m-%dT%H:%M:%S.%fZ}"
    assert [line.split(" ")[0] for line in digest["fallbacks"]] == ["dev"]
    # Its spend is `agentctl cost`'s over the same window, to the micro-dollar.
    cost = cli("cost", "--since", digest["since"], "--json", cwd=root)
    assert cost.exit_code == 0, cost.output
    total = json.loads(cost.stdout, parse_float=Decimal)["total"]
    assert Decimal(digest["spend"]["total_usd"]) == Decimal(total["cost_usd"]) > 0
    assert digest["spend"]["calls"] == total["calls"]
    assert Decimal(digest["impact"]["actual_usd"]) == Decimal(total["cost_usd"])
    slack_digest = receiver.bodies[-1]
    check_slack(slack_digest)
    assert slack_digest["blocks"][0]["type"] == "header"
    assert "digest" in slack_digest["blocks"][0]["text"]["text"]
    for _ in range(3):  # the same day: no second digest
        clock.advance(3600)
        ticking(root, clock)
    assert [c["event"] for c in map(json.loads, out.read_text().splitlines())][2:] == ["digest"]
    clock.now = at + timedelta(days=1, minutes=1)  # the next day's
    ticking(root, clock)
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["event"] == "digest" and last["digest"]["fallbacks"] == []
    no_secret_written(root, receiver)


# -- configuration and the idle tick ---------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('command = ["true"]\ndigest_at = "9:00"\n', "not a time of day HH:MM"),
        ('command = ["true"]\ndigest_at = "24:00"\n', "not a time of day HH:MM"),
        ('webhook_url_env = "https://hooks.slack.com/services/T/B/x"\n', "not hold the URL"),
        ('on = ["failed"]\n', "nowhere to send them"),
    ],
)
def test_notify_settings_are_checked(workspace: Path, table: str, message: str) -> None:
    with (workspace / "agentctl.toml").open("a") as config:
        config.write(f"\n[notify]\n{table}")
    with pytest.raises(ConfigError) as caught:
        load_config(find_workspace(workspace))
    text = str(caught.value) + "".join(str(i) for i in getattr(caught.value, "issues", []))
    assert message in text and "hooks.slack.com" not in text


def test_an_idle_tick_with_notify_configured_imports_no_http_client(
    workspace: Path, receiver: Receiver
) -> None:
    notify_table(workspace, f'webhook_url_env = "{HOOK_ENV}"\n')
    tracker = LocalTracker(workspace / ".agentctl")
    for ticket in tracker.list():
        tracker.set_state(ticket.id, "Done")
    code = (
        "import sys\nfrom agentctl.cli import main\n"
        "sys.argv = ['agentctl', 'orchestrate', '--once']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'httpx2'}),"
        " 'agentctl.orchestrator.notify_digest' in sys.modules, file=sys.stderr)\n"
    )
    env = {**os.environ, HOOK_ENV: receiver.url}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=workspace, capture_output=True, text=True, env=env
    )
    assert "tick: idle" in done.stdout, done.stdout + done.stderr
    assert "LOADED [] False" in done.stderr, done.stderr
    assert receiver.bodies == []
