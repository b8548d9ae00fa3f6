"""The Celery app: one task, ``agentctl.pipeline``, carrying a run id and nothing else.

Late acknowledgement and redelivery on worker loss make a killed worker's pipeline
run again elsewhere; prefetch 1 keeps a busy worker from sitting on queued runs;
JSON only, so a message can never carry code. ``celery -A agentctl.executors.celery_app
worker`` works from a workspace folder too (the app reads that workspace's config).
Celery is imported by this module only, and only where the executor is ``celery``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentctl import keystore
from agentctl.config import Config, load_config
from agentctl.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from celery import Celery

TASK = "agentctl.pipeline"
_STATE: dict[str, Any] = {}  # the worker's config and app, set once per process


def broker_url(config: Config) -> str:
    """``broker_url_env``'s value when set (a password lives there: kept like the keys,
    redacted everywhere), else ``broker_url``."""
    settings = config.settings.executor.celery
    if settings.broker_url_env:
        value = keystore.get(settings.broker_url_env)  # a key: out of the environment
        if not value:
            raise ConfigError(
                f"[executor.celery] broker_url_env names {settings.broker_url_env}, "
                "which is not set",
                hint=f"export {settings.broker_url_env}=redis://:PASSWORD@HOST:6379/0",
            )
        return value
    return settings.broker_url


def make_app(config: Config) -> Celery:
    """A Celery app for ``config``'s broker and queue, with the pipeline task registered."""
    try:
        from celery import Celery
    except ImportError as exc:
        raise UsageError(
            '[executor] kind = "celery" needs Celery, which is not installed',
            hint='pip install "agentctl[celery]"',
        ) from exc

    settings = config.settings.executor.celery
    app = Celery("agentctl", broker=broker_url(config), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # a dead worker's task is looked for this often (kombu >= 5.7 reads these;
            # 5.6 sweeps ~every 100 s, and the head's tick resubmits sooner anyway)
            "unacked_restore_interval": max(1, min(60, int(settings.visibility_timeout / 4))),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 30,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for its broker, however long
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=True,  # `agentctl workers` asks them
    )
    app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(_pipeline)
    return app


def serve(config: Config, app: Celery) -> None:
    """Make ``config`` and ``app`` this process's (a worker's forked pool inherits them)."""
    _STATE.update(config=config, app=app)


def _pipeline(task: Any, run_id: str) -> str:
    """The task: run (or resume, or leave alone) pipeline run ``run_id``."""
    # lazy: the task body and the run machinery, in the pool process that runs it
    from agentctl.executors.task import run_task

    return run_task(_config(), run_id)


def _config() -> Config:
    if "config" not in _STATE:  # `celery -A ...`: the workspace of the folder it runs in
        _STATE["config"] = load_config()
    config: Config = _STATE["config"]
    return config


def __getattr__(name: str) -> Any:
    """``app`` for ``celery -A agentctl.executors.celery_app``: built on first use."""
    if name != "app":
        raise AttributeError(name)
    if "app" not in _STATE:
        _STATE["app"] = make_app(_config())
    return _STATE["app"]
