"""The dashboard's routes through Starlette's TestClient, on a state folder built by a
real demo run (scripted models): pages, escaping, the token, Host, Origin and CSRF."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from agentctl.commands.dashboard.app import make_app
from agentctl.commands.dashboard.security import COOKIE, Guard
from agentctl.config import load_config
from agentctl.runs import RunStore
from agentctl.trackers.local import LocalTracker
from agentctl.workspace import find_workspace
from tests.conftest import Invoke

TOKEN = "dashboard-test-token"
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after `agentctl demo`: a ticket run through the whole team."""
    from typer.testing import CliRunner

    from agentctl.cli import app

    target = tmp_path_factory.mktemp("dash") / "demo"
    result = CliRunner().invoke(app, ["demo", "--dir", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    LocalTracker(target / ".agentctl").add(HOSTILE, description="a hostile title")
    heartbeat = target / "HEARTBEAT.md"
    heartbeat.write_text(heartbeat.read_text() + "\n- every 30m [ci]: Check that CI is green\n")
    return target


def client_for(root: Path, *, host: str = "127.0.0.1", port: int = 8765) -> TestClient:
    config = load_config(find_workspace(root))
    app = make_app(config, Guard(token=TOKEN, host=host, port=port))
    return TestClient(app, base_url=f"http://{host}:{port}")


@pytest.fixture
def client(demo: Path) -> Iterator[TestClient]:
    with client_for(demo) as c:
        c.cookies.set(COOKIE, TOKEN)
        yield c


def test_without_the_token_nothing_is_served(demo: Path) -> None:
    with client_for(demo) as anonymous:
        for path in ("/", "/costs", "/static/live.js"):
            answer = anonymous.get(path)
            assert answer.status_code == 401 and "token" in answer.text
        assert anonymous.get("/?token=wrong").status_code == 401


def test_the_printed_address_sets_a_strict_cookie_and_drops_the_token(demo: Path) -> None:
    with client_for(demo) as browser:
        answer = browser.get(f"/?token={TOKEN}", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/").status_code == 200  # the cookie is enough from now on


def test_a_foreign_host_name_is_refused_even_with_the_token(demo: Path) -> None:
    with client_for(demo) as c:
        c.cookies.set(COOKIE, TOKEN)
        answer = c.get("/", headers={"host": "evil.example:8765"})  # DNS rebinding
        assert answer.status_code == 421
        assert c.get("/", headers={"host": "localhost:8765"}).status_code == 200


def test_bound_to_another_host_the_token_is_still_required(demo: Path) -> None:
    with client_for(demo, host="0.0.0.0") as c:
        assert c.get("/", headers={"host": "10.1.2.3:8765"}).status_code == 401
        c.cookies.set(COOKIE, TOKEN)
        assert c.get("/", headers={"host": "10.1.2.3:8765"}).status_code == 200


def test_the_overview_shows_the_demo_and_escapes_a_hostile_title(
    client: TestClient, demo: Path
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    text = page.text
    assert "pipeline" in text and "Done" in text
    assert "loop not running" in text
    assert 'id="health"' in text and "Healthy" in text  # nothing stopped, parked or capped
    assert "Check that CI is green" in text and "never" in text  # a duty, not yet run
    runs = [listing.id for listing in RunStore(demo / ".agentctl").list(kind="pipeline")]
    assert runs and runs[0] in text  # the demo's pipeline in the recent runs
    assert HOSTILE not in text  # a title is text, never markup


def test_a_run_page_shows_its_steps_and_events_escaped(client: TestClient, demo: Path) -> None:
    (pipeline,) = RunStore(demo / ".agentctl").list(kind="pipeline")
    page = client.get(f"/runs/{pipeline.id}")
    assert page.status_code == 200
    assert 'id="events"' in page.text and 'id="children"' in page.text
    assert "step worktree" in page.text and "agent review" in page.text
    assert client.get("/runs/no-such-run").status_code == 404


def test_the_cost_page_totals_what_agentctl_cost_says(
    client: TestClient, demo: Path, cli: Invoke
) -> None:
    page = client.get("/costs")
    assert page.status_code == 200 and "<svg" in page.text
    total = page.text.split('id="total" data-usd="')[1].split('"')[0]
    said = json.loads(cli("cost", "--since", "30d", "--json", cwd=demo).stdout)
    assert total == str(said["total"]["cost_usd"]) or float(total) == said["total"]["cost_usd"]


def test_a_post_needs_this_origin_and_the_csrf_token(client: TestClient, demo: Path) -> None:
    guard = Guard(token=TOKEN, host="127.0.0.1", port=8765)
    here = {"origin": "http://127.0.0.1:8765"}
    no_csrf = client.post("/act/stop", data={"back": "/"}, headers=here)
    assert no_csrf.status_code == 403 and "token" in no_csrf.text
    foreign = client.post(
        "/act/stop", data={"csrf": guard.csrf}, headers={"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    done = client.post(
        "/act/stop", data={"csrf": guard.csrf, "back": "/"}, headers=here, follow_redirects=False
    )
    assert done.status_code == 303 and "not+running" in done.headers["location"]
    # An open redirect is not possible through "back".
    away = client.post(
        "/act/stop",
        data={"csrf": guard.csrf, "back": "//evil.example/"},
        headers=here,
        follow_redirects=False,
    )
    assert away.headers["location"].startswith("/?")


def test_a_tool_output_with_markup_is_shown_as_text_and_keys_never(
    client: TestClient, demo: Path, request: pytest.FixtureRequest
) -> None:
    from agentctl import keystore

    key = "sk-dashboard-canary-6a1f0c9e"
    keystore.load(["DASHBOARD_TEST_KEY"], environ={"DASHBOARD_TEST_KEY": key})
    request.addfinalizer(keystore.forget)
    store = RunStore(demo / ".agentctl")
    run = store.create("agent", input={"task": "x", "role": "dev"}, role="dev")
    run.journal.append("tool.result", name="bash", content=f"{HOSTILE} and {key}")
    page = client.get(f"/runs/{run.id}")
    assert HOSTILE not in page.text and "&lt;script&gt;alert" in page.text
    assert key not in page.text and "[redacted]" in page.text


def test_the_event_stream_sends_what_follows_then_ends_with_the_run(
    client: TestClient, demo: Path
) -> None:
    store = RunStore(demo / ".agentctl")
    run = store.create("agent", input={"task": "x", "role": "dev"}, role="dev")
    run.mark_started(os.getpid(), os.getpgid(0))
    first = run.journal.append("note", text="before the page")
    writer = threading.Timer(
        0.3,
        lambda: (
            run.journal.append("tool.start", name="bash", arguments={"command": "ls"}),
            run.transition("succeeded", reason="done"),
        ),
    )
    writer.start()
    seen = []
    with client.stream("GET", f"/runs/{run.id}/events?after={first}") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
    writer.join()
    types = [event["type"] for event in seen if isinstance(event, dict)]
    assert "note" not in types  # what the page already had is not sent again
    assert "tool.start" in types and "status" in types
    assert seen[-1] == "succeeded"  # the end event carries the final status


def test_a_taken_port_is_one_clear_error_before_any_address_is_printed(
    demo: Path, cli: Invoke
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("dashboard", "--port", str(port), cwd=demo)
    assert result.exit_code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "token=" not in result.stdout and "Traceback" not in result.stderr


def act(client: TestClient, action: str, target: str = "") -> str:
    """POST a dashboard action as its button does; the message the page then shows."""
    guard = Guard(token=TOKEN, host="127.0.0.1", port=8765)
    path = f"/act/{action}" + (f"/{target}" if target else "")
    answer = client.post(
        path,
        data={"csrf": guard.csrf, "back": "/"},
        headers={"origin": "http://127.0.0.1:8765"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["msg"][0]


def test_the_loop_starts_and_stops_from_the_overview(workspace: Path) -> None:
    from agentctl.orchestrator.loop import loop_pid

    config = load_config(find_workspace(workspace))
    with client_for(workspace) as c:
        c.cookies.set(COOKIE, TOKEN)
        said = act(c, "start")
        pid = loop_pid(config)
        assert pid is not None and f"pid {pid}" in said
        assert "loop running" in c.get("/").text
        assert f"pid {pid}" in act(c, "stop")
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # it finishes its tick, leaves, and is reaped: no zombie
        assert not Path(f"/proc/{pid}").exists()
        assert loop_pid(config) is None and "loop not running" in c.get("/").text


def test_a_blocked_ticket_is_retried_and_a_finished_run_is_not_resumed(
    workspace: Path, demo: Path, client: TestClient
) -> None:
    tracker = LocalTracker(workspace / ".agentctl")
    ticket = tracker.add("Flaky build")
    tracker.block(ticket.id)
    with client_for(workspace) as c:
        c.cookies.set(COOKIE, TOKEN)
        said = act(c, "retry", ticket.id)
    assert "blocked" in said and "next tick" in said
    assert tracker.get(ticket.id).state != "Blocked"
    (pipeline,) = RunStore(demo / ".agentctl").list(kind="pipeline")
    said = act(client, "resume", pipeline.id)
    assert "only unfinished runs resume" in said  # the core's own refusal, said on the page


def test_the_health_line_names_what_needs_a_look() -> None:
    from agentctl.commands.dashboard.views import health

    calm = health({"active_runs": [{"id": "a"}], "loop_pid": 42, "spend_today": {}})
    assert calm == {"ok": True, "worries": [], "facts": ["loop running", "1 run working"]}
    worried = health(
        {
            "stopped_runs": [{"id": "x"}, {"id": "y"}],
            "parked": [{"ticket": "T-3"}],
            "spend_today": {
                "total_usd": 9.5,
                "daily_usd": 10,
                "roles": [{"role": "dev", "spent_usd": 1.0, "cap_usd": 5}],
                "models": [{"model": "sonnet", "spent_usd": 2.0, "cap_usd": 2}],
                "fallbacks": [{"role": "dev", "first": "coder", "to": "sonnet", "spent_usd": 1}],
            },
        }
    )
    assert not worried["ok"]
    assert worried["worries"] == [
        "2 stopped runs need a look",
        "1 parked ticket",
        "the day at 95% of its cap",
        "model sonnet at 100% of its cap",
        "role dev is on paid fallback sonnet (its coder does not answer)",
    ]
