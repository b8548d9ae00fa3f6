"""The dashboard in a real browser: headless Chromium through selenium, against
``agentctl dashboard`` run as its own process on a state folder built by a real demo.

What the route tests cannot see is checked here: the cookie the printed address sets
is enough for a browser, the run page's script appends journal events live (no
reload), the cost chart's numbers are ``agentctl cost``'s, and a cancel button posts a
form that passes the Origin and CSRF checks and cancels a real agent process.

Skips when Chromium or chromedriver is not installed; fails instead when
``AGENTCTL_REQUIRE_BROWSER=1`` (CI installs Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentctl.commands.demo import config_text
from agentctl.runs import RunStore
from agentctl.testing.llm_server import LLMServer, Turn

pytestmark = pytest.mark.timeout(120)  # the first test also pays for the demo and Chromium

TOKEN = "browser-test-token"
WIDTH, HEIGHT = 1280, 900
PNG = b"\x89PNG\r\n\x1a\n"
BUSY = "dashboard-cancel-test-b7c1"


def _unavailable(reason: str) -> None:
    if os.environ.get("AGENTCTL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (AGENTCTL_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing = " and ".join(
            name
            for name, path in (("chromium", chromium), ("chromedriver", driver))
            if path is None
        )
        _unavailable(
            f"{missing} not found on PATH (Debian: apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        _unavailable('selenium is not installed (pip install -e ".[dev]")')
    return str(chromium), str(driver)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _running(marker: str) -> bool:
    """Whether a process whose command line holds ``marker`` is alive."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


@dataclass
class Site:
    root: Path  # the demo's workspace
    pipeline: str  # the demo's pipeline run (the ticket, fixed, reviewed, merged)
    base: str  # http://127.0.0.1:<port>
    driver: Any  # selenium.webdriver.Chrome
    server: LLMServer  # the scripted models the workspace's config points at
    env: dict[str, str]  # the environment agentctl's processes run with

    @property
    def store(self) -> RunStore:
        return RunStore(self.root / ".agentctl")

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def agentctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentctl", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A demo workspace, its dashboard on a free port, and Chromium holding the cookie."""
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    base_dir = tmp_path_factory.mktemp("browser")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AGENTCTL_FAILPOINT", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    }
    env["AGENTCTL_CONFIG_DIR"] = str(base_dir / "user-config")
    env["PYTHONUNBUFFERED"] = "1"
    root = base_dir / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "agentctl", "demo", "--dir", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    with LLMServer() as server:
        # The demo's model server is gone with the demo: point its models at this one.
        (root / "agentctl.toml").write_text(config_text(server))
        port = _free_port()
        log = (base_dir / "dashboard.log").open("w")
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "agentctl", "dashboard", "--port", str(port), "--token", TOKEN],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        driver = None
        try:
            _wait_for(
                lambda: _answers(port) or dashboard.poll() is not None, 10, "the dashboard's port"
            )
            assert dashboard.poll() is None, (base_dir / "dashboard.log").read_text()
            options = Options()
            options.binary_location = chromium
            options.add_argument("--headless=new")
            options.add_argument("--disable-dev-shm-usage")
            options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
            if os.geteuid() == 0:
                options.add_argument("--no-sandbox")
            driver = webdriver.Chrome(options=options, service=Service(chromedriver))
            driver.set_page_load_timeout(20)
            # The viewport itself at 1280x900 (the window's size includes what headless
            # Chrome reserves for its toolbars): the screenshots are that size.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            )
            base = f"http://127.0.0.1:{port}"
            driver.get(f"{base}/?token={TOKEN}")  # the printed address: sets the cookie
            assert driver.current_url == f"{base}/", driver.current_url  # token dropped
            (pipeline,) = RunStore(root / ".agentctl").list(kind="pipeline")
            yield Site(root, pipeline.id, base, driver, server, env)
        finally:
            if driver is not None:
                driver.quit()
            with contextlib.suppress(ProcessLookupError):  # the whole group: uvicorn and all
                os.killpg(dashboard.pid, signal.SIGKILL)
            dashboard.wait(timeout=10)
            log.close()


def by_css(site: Site, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(site.driver.find_elements(By.CSS_SELECTOR, selector))


def test_the_overview_lists_the_demos_runs(site: Site) -> None:
    site.open("/")
    assert site.driver.title.startswith("overview")
    (row,) = by_css(site, f'#recent tr[data-run="{site.pipeline}"]')
    cells = [cell.text for cell in row.find_elements("css selector", "td")]
    assert cells[0] == "pipeline" and cells[1].startswith("demo")
    assert "T-1" in cells and "succeeded" in cells
    link = row.find_element("css selector", "a")
    assert link.get_attribute("href") == f"{site.base}/runs/{site.pipeline}"
    agents = {listing.id for listing in site.store.list(kind="agent")}
    shown = {r.get_attribute("data-run") for r in by_css(site, "#recent tr[data-run]")}
    assert agents and agents <= shown  # the dev and review agents the pipeline ran
    assert "loop not running" in by_css(site, "section.health")[0].text


def test_a_running_pipelines_page_shows_a_new_step_without_reloading(site: Site) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    run = site.store.create("pipeline", input={"ticket": "T-1"}, pipeline="demo")
    run.mark_started(os.getpid(), os.getpgid(0))
    try:
        site.open(f"/runs/{run.id}")
        assert by_css(site, "#status")[0].text == "running"
        marker = f"no-reload-{time.monotonic_ns()}"
        site.driver.execute_script("window.__agentctlMarker = arguments[0];", marker)
        time.sleep(0.5)  # the page's EventSource is connected and idle
        started = time.monotonic()
        seq = run.journal.append("step.start", step="implement", role="dev")
        row = WebDriverWait(site.driver, 10, poll_frequency=0.01).until(
            lambda d: d.find_elements("css selector", f'#events tr[data-seq="{seq}"]')
        )[0]
        latency = time.monotonic() - started
        print(f"\nlive event latency: {latency * 1000:.0f} ms (journal append → row in the page)")
        assert site.driver.execute_script("return window.__agentctlMarker;") == marker
        assert "new" in (row.get_attribute("class") or "").split()  # appended by live.js
        assert "step.start" in row.text and "implement" in row.text
        # The run's end reaches the page too: the status changes in place.
        run.transition("succeeded", reason="done")
        WebDriverWait(site.driver, 10, poll_frequency=0.05).until(
            lambda d: d.find_element("css selector", "#status").text == "succeeded"
        )
        assert site.driver.execute_script("return window.__agentctlMarker;") == marker
    finally:
        if run.load().status == "running":
            run.transition("canceled", reason="test over")


def test_the_cost_chart_totals_what_agentctl_cost_says(site: Site) -> None:
    site.open("/costs")
    charts = by_css(site, "svg.chart")
    assert len(charts) == 3 and all(chart.is_displayed() for chart in charts)
    total = by_css(site, "#total")[0]
    shown = Decimal(total.get_attribute("data-usd"))
    assert shown > 0 and total.text.startswith("$")
    role_bars = site.driver.execute_script(
        "const svg = [...document.querySelectorAll('svg.chart')]"
        "  .find(s => s.querySelector('title').textContent === 'cost by role');"
        "return [...svg.querySelectorAll('g.bar')].map(g => g.dataset.usd);"
    )
    assert len(role_bars) >= 2  # dev and review
    assert sum(Decimal(usd) for usd in role_bars) == shown
    said = site.agentctl("cost", "--since", "30d", "--json")
    assert said.returncode == 0, said.stderr
    assert float(shown) == json.loads(said.stdout)["total"]["cost_usd"]


def test_the_cancel_button_cancels_a_running_agent(site: Site) -> None:
    busy = f"sleep 60; echo {BUSY}"  # the marker names the agent's shell in /proc
    site.server.script("demo-coder", Turn.tool_call("bash", {"command": busy}))
    started = site.agentctl("agent", "run", "dev", "Wait a minute.", "--detach")
    assert started.returncode == 0, started.stderr
    run = site.store.get(started.stdout.strip())
    try:
        _wait_for(lambda: _running(BUSY), 20, "the agent's command to start")
        site.open("/")
        (button,) = by_css(site, f'#active tr[data-run="{run.id}"] button[data-action="cancel"]')
        button.click()
        try:
            _wait_for(lambda: run.load().status == "canceled", 10, "the run to be canceled")
        except AssertionError as exc:  # say what the browser was shown (a refusal, say)
            page = site.driver.find_element("tag name", "body").text
            raise AssertionError(f"{exc}\nthe page at {site.driver.current_url}:\n{page}") from None
        message = _wait_for(lambda: by_css(site, "p.message"), 10, "the page's message")[0]
        assert run.id in message.text and "cancel" in message.text
        assert site.driver.current_url.startswith(f"{site.base}/?msg=")
        assert not by_css(site, f'#active tr[data-run="{run.id}"]')  # no longer working
        _wait_for(lambda: not _running(BUSY), 5, "the agent's command to be killed")
    finally:
        if run.load().status == "running":
            site.agentctl("runs", "cancel", run.id, "--grace", "0.5")


def test_screenshots_of_the_overview_and_a_run_page(site: Site, tmp_path: Path) -> None:
    shots = {"overview.png": "/", "run.png": f"/runs/{site.pipeline}"}
    for name, path in shots.items():
        site.open(path)
        assert site.driver.save_screenshot(str(tmp_path / name))
    for name in shots:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (WIDTH, HEIGHT), name
