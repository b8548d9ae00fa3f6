"""The dashboard's web application: pages, a live event stream, and four actions.

Starlette, server-rendered Jinja2 (autoescaped: a ticket title or tool output carrying
``<script>`` is shown as text), one small script of our own for the live stream, and
the ``Gate`` in front of everything (``security.py``). Reading is done in a worker
thread (``run_in_threadpool``): the pages read files, and the event loop must keep
serving the streams meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentctl.commands.dashboard import actions, charts, views
from agentctl.commands.dashboard.security import Gate, Guard
from agentctl.config import Config
from agentctl.errors import AgentctlError, NotFoundError
from agentctl.runs import RunStore
from agentctl.runs.record import TERMINAL
from agentctl.runs.timefmt import utc_now

HERE = Path(__file__).parent
POLL = 0.2  # seconds between looks at a followed journal
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    # not "no-referrer": under it a browser sends `Origin: null` with a form's POST, and
    # the Origin check refuses every action; "same-origin" still sends nothing elsewhere
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def make_app(config: Config, guard: Guard, *, clock: Callable[[], datetime] = utc_now) -> Any:
    """The ASGI application for ``config``'s workspace, behind ``guard``."""
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    templates.globals.update(money=charts.money, gauge=charts.gauge, csrf=guard.csrf)

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = templates.get_template(name).render(**values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    async def overview(request: Request) -> Response:
        data = await run_in_threadpool(views.overview, config, clock())
        return page("overview.html", data=data, message=request.query_params.get("msg"))

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            data = await run_in_threadpool(views.run_page, config, run_id)
        except NotFoundError as exc:
            return page("error.html", 404, problem=str(exc))
        return page("run.html", run=data, message=request.query_params.get("msg"))

    async def costs(request: Request) -> Response:
        data = await run_in_threadpool(views.costs, config, clock())
        charts_ = {
            "role": charts.bars(data["role"], title="cost by role"),
            "model": charts.bars(data["model"], title="cost by model"),
            "day": charts.columns(data["day"], title="cost by day"),
        }
        return page("costs.html", data=data, charts=charts_)

    async def events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            run = RunStore(config.workspace.state_dir).get(run_id)
        except NotFoundError as exc:
            return Response(str(exc), status_code=404)
        after = _int(request.headers.get("last-event-id") or request.query_params.get("after"))
        return StreamingResponse(
            _follow(request, run.paths.events, run.load, after),
            media_type="text/event-stream",
            headers={**HEADERS, "x-accel-buffering": "no"},
        )

    async def act(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not guard.origin_ok(origin, request.headers.get("host")):
            return page("error.html", 403, problem="refused: the request came from another page")
        if not guard.csrf_ok(form.get("csrf")):
            return page("error.html", 403, problem="refused: the form's token is missing or old")
        action = request.path_params["action"]
        target = request.path_params.get("target", "")
        try:
            said = await run_in_threadpool(actions.perform, config, action, target)
        except AgentctlError as exc:
            said = f"{exc.message}" + (f" — {exc.hint}" if exc.hint else "")
        back = form.get("back") or "/"
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        return RedirectResponse(f"{back}?{_msg(said)}", status_code=303, headers=HEADERS)

    routes = [
        Route("/", overview),
        Route("/costs", costs),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/events", events),
        Route("/act/{action}", act, methods=["POST"]),
        Route("/act/{action}/{target}", act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Gate(Starlette(routes=routes), guard)


async def _follow(
    request: Request, path: Path, load: Callable[[], Any], after: int
) -> AsyncIterator[bytes]:
    """The run's journal from ``after`` on, as Server-Sent Events, until the run ends."""
    offset = 0
    pending = b""
    idle = 0.0
    yield b"retry: 1000\n\n"
    while not await request.is_disconnected():
        chunk = await run_in_threadpool(_read_from, path, offset)
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn or corrupt line: the journal reader reports those
            if not isinstance(event, dict) or _int(event.get("seq")) <= after:
                continue
            after = _int(event.get("seq"))
            data = json.dumps(views.shown(event), ensure_ascii=False)
            yield f"id: {after}\nevent: journal\ndata: {data}\n\n".encode()
        if not chunk:
            record = await run_in_threadpool(load)
            if record.status in TERMINAL:
                yield f"event: end\ndata: {json.dumps(record.status)}\n\n".encode()
                return
            idle += POLL
            if idle >= 15:
                idle = 0.0
                yield b": still here\n\n"
            await asyncio.sleep(POLL)
        else:
            idle = 0.0


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(1 << 20)
    except OSError:
        return b""


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _msg(text: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"msg": text[:300]})
